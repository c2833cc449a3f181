import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRequestLocals, { type FastifyRequestLocalsOptions } from '../../src/fastify.js'
import { requestLocal, tryGetLocals } from '../../src/index.js'
import './locals.js'

/** The user id the current code sees, without throwing outside a scope. */
export function seenUser (): string {
  const locals = tryGetLocals()
  return locals === undefined ? '(no scope)' : locals.user?.id ?? '(no user)'
}

/**
 * A Fastify app with the plugin whose requests are authenticated as the user
 * named by their x-user header. `extend` registers more plugins before the
 * hook (as an application registers its own).
 */
export async function appWithUsers (t: Test, extend?: (app: FastifyInstance) => Promise<void>, options: FastifyRequestLocalsOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyRequestLocals, options)
  if (extend !== undefined) await extend(app)
  app.addHook('onRequest', async (request) => {
    requestLocal.user = { id: String(request.headers['x-user']) }
  })
  t.teardown(() => app.close())
  return app
}
