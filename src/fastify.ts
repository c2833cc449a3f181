import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { describe, optionsError } from './errors.js'
import { sharedStorage, type Store } from './storage.js'
import { attachRequest } from './scope-state.js'
import { scopeRequestEvents } from './node-lifecycle.js'
import { compileDefaults } from './store.js'
import type { RequestLocals } from './index.js'

/**
 * Options of the Fastify plugin.
 *
 * @example
 * await app.register(fastifyRequestLocals, {
 *   defaults: (request) => ({ tenant: String(request.headers['x-tenant'] ?? 'public') })
 * })
 */
export interface FastifyRequestLocalsOptions {
  /**
   * The values each request starts with: a function called per request, or a
   * plain-data object copied per request (never shared between requests).
   */
  defaults?: Partial<RequestLocals> | ((request: FastifyRequest) => Partial<RequestLocals>)
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's locals: the same store `requestLocal` reads and writes. */
    locals: RequestLocals
  }
}

function fastifyRequestLocalsPlugin (fastify: FastifyInstance, options: FastifyRequestLocalsOptions, done: (err?: Error) => void): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    done(optionsError(`The request-locals plugin options must be an object; found ${describe(options)}. Pass for example { defaults: { tenant: 'public' } }, or nothing.`))
    return
  }
  let makeStore
  try {
    makeStore = compileDefaults<FastifyRequest>(options.defaults, 'The request-locals plugin option `defaults`')
  } catch (err) {
    done(err as Error)
    return
  }
  const storage = sharedStorage()

  fastify.decorateRequest('locals', null as unknown as RequestLocals)
  // onRequest is the first hook Fastify runs for a request; running the rest
  // of the lifecycle inside storage.run() makes every later hook, the body
  // parser and the handler inherit the scope through the async context.
  fastify.addHook('onRequest', function openRequestScope (request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    const store = makeStore(request)
    attachRequest(store, request)
    request.locals = store as RequestLocals
    // Fastify reads the body from the raw request's events, which Node emits
    // in the socket's context: without this, a content-type parser (and any
    // raw 'data'/'end'/'close' listener) runs outside the scope once a body
    // arrives in more than one chunk.
    scopeRequestEvents(store, request.raw, reply.raw)
    storage.run(store, next)
  })
  // Fastify runs these two from socket events ('close', 'timeout'), whose
  // async context is the connection's, not the request's. Running first in
  // their hook chain, these re-enter the request's own store (not a saved
  // async resource), so the hooks after them see it and no other library's
  // context is replaced.
  fastify.addHook('onRequestAbort', function enterScopeOnAbort (request: FastifyRequest, next: HookHandlerDoneFunction) {
    storage.run(request.locals as Store, next)
  })
  fastify.addHook('onTimeout', function enterScopeOnTimeout (request: FastifyRequest, _reply: FastifyReply, next: HookHandlerDoneFunction) {
    storage.run(request.locals as Store, next)
  })
  done()
}

/**
 * The Fastify plugin: opens one scope per request, so `requestLocal` works in
 * every hook and handler registered after it, and sets `request.locals`.
 *
 * @example
 * import Fastify from 'fastify'
 * import fastifyRequestLocals from 'request-locals/fastify'
 * import { requestLocal } from 'request-locals'
 *
 * const app = Fastify()
 * await app.register(fastifyRequestLocals, { defaults: { tenant: 'public' } })
 * app.addHook('onRequest', async (request) => { requestLocal.user = await auth(request) })
 */
export const fastifyRequestLocals = fp(fastifyRequestLocalsPlugin, {
  fastify: '5.x',
  name: 'request-locals'
})

export default fastifyRequestLocals
