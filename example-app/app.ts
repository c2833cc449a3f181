import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import fastifyRequestLocals from 'request-locals/fastify'
import { requestLocal } from 'request-locals'
import { addLogBindings } from 'request-locals/pino'
import { greet } from './services/greeting.js'
import { findUser } from './repositories/users.js'
import { log, root } from './log.js'
import './locals.js'

export async function buildApp (logger: FastifyBaseLogger = root): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: logger })
  await app.register(fastifyRequestLocals, {
    requestId: { header: 'x-request-id', echoHeader: true }
  })

  // Authentication sets the user once; everything downstream reads it, and
  // every later log line of the request carries it.
  app.addHook('onRequest', async (request) => {
    const id = request.headers['x-user']
    const user = typeof id === 'string' ? await findUser(id) : undefined
    if (user !== undefined) {
      requestLocal.user = user
      addLogBindings({ userId: user.id })
    }
  })

  app.get('/hello', async function hello () {
    log.info('hello route')
    return greet()
  })
  app.log.info('routes ready')
  return app
}
