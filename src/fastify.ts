import fp from 'fastify-plugin'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { optionsError, uncalledFactoryError } from './core/errors.js'
import { booleanOption } from './core/options.js'
import { compileRequestScopeOptions, type RequestScopeOptions, type RequestScopePolicy } from './adapters/scope-options.js'
import { sharedStorage, type LocalsStorage, type Store } from './core/storage.js'
import { endingOf, outcomeBeforeResponse, recordScopeError } from './lifecycle/scope-end.js'
import { endResourcesNow } from './lifecycle/resources.js'
import { attachReply, attachRequest, attachResponse } from './core/scope-state.js'
import { attachIncoming, logReplacedRequestId, resolveRequestId, type IncomingRequestId, type RequestIdPolicy } from './headers/request-id.js'
import { scopeRequestEvents } from './node/request-scope.js'
import { scopeWebsocketConnections } from './node/websocket.js'
import type { RequestLocals } from './core/request-locals.js'
import type { LocalsProxy } from './core/proxy.js'
import { kIncomingRequestId } from './protocol/symbols.js'

/**
 * Options of the Fastify plugin: the options every adapter takes
 * ({@link RequestScopeOptions}, `defaults` given the Fastify request,
 * `requestId.generate` the raw request), and `scopeRawEvents`.
 *
 * @example
 * await app.register(fastifyRequestLocals, {
 *   defaults: (request) => ({ tenant: String(request.headers['x-tenant'] ?? 'public') }),
 *   requestId: { echoHeader: true },
 *   endResourcesBeforeResponse: true
 * })
 */
export interface FastifyRequestLocalsOptions extends RequestScopeOptions<FastifyRequest, IncomingMessage> {
  /**
   * Also run the raw request's and response's events (`request.raw`,
   * `reply.raw`: 'data', 'end', 'close' …) in the request's store, so that a
   * custom content-type parser reading locals on a body that arrived in
   * several chunks, or a raw 'close' listener (a client's disconnect), sees
   * it. Off by default: it costs about 8 % of a small request, and Fastify's
   * own hooks (onRequestAbort included) see the store without it.
   */
  scopeRawEvents?: boolean
}

export type { RequestIdOptions, RequestIdRejection, UpstreamOptions } from './headers/request-id.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
export type { InboundBaggageOptions } from './headers/baggage.js'

// The id decision is made in Fastify's genReqId, before the request (and its
// logger) exists; the onRequest hook picks the rest of it up from here.
type RawWithIncoming = IncomingMessage & { [kIncomingRequestId]?: IncomingRequestId }

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's locals: the same store `requestLocal` reads and writes. */
    locals: LocalsProxy<RequestLocals>
  }
}

// Applies the request id decided in genReqId (see requestIdByPolicy) to the
// request's scope: recorded, logged when an incoming id was refused, echoed.
function applyRequestIdPolicy (policy: RequestIdPolicy, store: Store, request: FastifyRequest, reply: FastifyReply): void {
  // Undefined only when a child context replaced the id generator.
  const incoming = (request.raw as RawWithIncoming)[kIncomingRequestId]
  attachIncoming(store, request.id, incoming)
  // request.log already carries the id itself.
  if (incoming?.rejected !== undefined) logReplacedRequestId(request.log, policy, incoming.rejected)
  const echo = policy.echoHeader
  if (echo !== undefined) reply.header(echo, request.id)
}

const WHERE = 'app.register(fastifyRequestLocals, options)'

// The two hook kinds Fastify runs outside the request's async context.
const kScopedHooks: ReadonlySet<string> = new Set(['onRequestAbort', 'onTimeout'])

type AnyHook = (this: unknown, request: FastifyRequest, ...rest: unknown[]) => unknown

// One wrapper per registered hook, none per request. `arguments` and
// Reflect.apply keep Fastify's `this` (the instance) and its `done` callback;
// the hook's own result (a promise for an async hook) is returned as is.
function inRequestScope (storage: LocalsStorage, hook: AnyHook): AnyHook {
  return function runHookInRequestScope (this: unknown, request: FastifyRequest) {
    // null when the scope never opened (a hook registered before the plugin
    // was still running when the client left, or timed out): the hook then
    // runs outside any scope (hasLocals() false, requestLocal refuses), never
    // in a null store nor in whatever scope the connection was made in.
    const store = request.locals as Store | null
    if (store === null) return storage.exit(Reflect.apply, hook, this, arguments)
    return storage.run(store, Reflect.apply, hook, this, arguments)
  }
}

// Fastify refuses an async hook that also takes a `done` callback by looking
// at the function itself; such a hook is passed on unwrapped so that Fastify
// still throws its own error for it.
function refusedByFastify (name: string, hook: AnyHook): boolean {
  if (hook.constructor.name !== 'AsyncFunction') return false
  return name === 'onRequestAbort' ? hook.length !== 1 : hook.length === 3
}

function scopedHook (storage: LocalsStorage, name: string, hook: unknown): unknown {
  if (!kScopedHooks.has(name)) return hook
  const scoped = (each: unknown): unknown => typeof each === 'function' && !refusedByFastify(name, each as AnyHook) ? inRequestScope(storage, each as AnyHook) : each
  // Route options also take an array of hooks; anything else is left for
  // Fastify to reject with its own error.
  return Array.isArray(hook) ? hook.map(scoped) : scoped(hook)
}

// Where an application can register an onRequestAbort or onTimeout hook after
// the plugin: `addHook` on this instance and on every context created from it
// (Fastify makes child contexts with Object.create, so they inherit the
// wrapped method, and fastify-plugin children share this very instance), and
// the route options, which Fastify hands to onRoute hooks before it reads them.
function scopeAbortAndTimeoutHooks (fastify: FastifyInstance, storage: LocalsStorage): void {
  const addHook = fastify.addHook as (this: FastifyInstance, name: string, hook: unknown) => FastifyInstance
  const addHookInRequestScope = function addHookInRequestScope (this: FastifyInstance, name: string, hook: unknown): FastifyInstance {
    return Reflect.apply(addHook, this, [name, scopedHook(storage, name, hook)]) as FastifyInstance
  }
  fastify.addHook = addHookInRequestScope as FastifyInstance['addHook']
  fastify.addHook('onRoute', function scopeRouteHooks (route) {
    const options = route as unknown as Record<string, unknown>
    for (const name of kScopedHooks) {
      if (options[name] !== undefined) options[name] = scopedHook(storage, name, options[name])
    }
  })
}

function fastifyRequestLocalsPlugin (fastify: FastifyInstance, options: FastifyRequestLocalsOptions, done: (err?: Error) => void): void {
  // Called instead of registered: app.register(fastifyRequestLocals({ … }))
  // would otherwise fail inside Fastify with "done is not a function".
  if (typeof done !== 'function' || typeof (fastify as Partial<FastifyInstance> | undefined)?.addHook !== 'function') {
    throw uncalledFactoryError('fastifyRequestLocals(…) called directly', 'app.register(fastifyRequestLocals, options)')
  }
  let policy: RequestScopePolicy<FastifyRequest>
  let scopeRaw: boolean
  try {
    policy = compileRequestScopeOptions<FastifyRequest>(options, WHERE, ['scopeRawEvents'])
    scopeRaw = booleanOption(options.scopeRawEvents, false, `${WHERE}.scopeRawEvents`)
  } catch (err) {
    done(err as Error)
    return
  }
  // fastify-plugin shares this plugin with the whole app, so a second
  // registration (or a plugin of a parent) would decorate `locals` again:
  // Fastify throws FST_ERR_DEC_ALREADY_PRESENT and then waits out its plugin
  // timeout. Refuse it at once, saying why.
  if (fastify.hasRequestDecorator('locals')) {
    done(optionsError(
      `${WHERE}: request-locals is already registered on this Fastify instance (or its parent), or another plugin decorates request.locals; found a second registration. ` +
      'Register it once, on the root instance, before the routes and hooks that use it.'
    ))
    return
  }
  const { makeStore } = policy
  const requestIdPolicy = policy.requestId
  if (requestIdPolicy !== undefined) {
    if (fastify.initialConfig.requestIdHeader !== false) {
      done(optionsError(
        `${WHERE}: the request id options conflict with Fastify's own requestIdHeader option (found ${JSON.stringify(fastify.initialConfig.requestIdHeader)}), ` +
        'which accepts any raw header value ahead of the plugin\'s validation. ' +
        `Remove requestIdHeader from Fastify's options and pass { upstream: { trust: true, requestIdHeader: ${JSON.stringify(fastify.initialConfig.requestIdHeader)} } } to the plugin instead, where every caller is one of your own services.`
      ))
      return
    }
    fastify.setGenReqId(function requestIdByPolicy (raw: RawWithIncoming): string {
      const incoming = resolveRequestId(requestIdPolicy, raw.rawHeaders, raw)
      raw[kIncomingRequestId] = incoming
      return incoming.id
    })
  }
  const storage = sharedStorage()
  function enterRequestScope (request: FastifyRequest, next: HookHandlerDoneFunction): void {
    const store = request.locals as Store | null
    if (store === null) storage.exit(next)
    else storage.run(store, next)
  }

  fastify.decorateRequest('locals', null as unknown as RequestLocals)
  // onRequest is the first hook Fastify runs for a request; running the rest
  // of the lifecycle inside storage.run() makes every later hook, the body
  // parser and the handler inherit the scope through the async context.
  fastify.addHook('onRequest', function openRequestScope (request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    const store = makeStore(request)
    attachRequest(store, request)
    // The raw response's 'close' ends the scope's resources, on every path
    // (sent, thrown, aborted, timed out, hijacked, streamed).
    attachResponse(store, reply.raw)
    // Where addLogBindings puts the request's own logger, so that Fastify's
    // closing line (written through reply.log) carries the fields too.
    attachReply(store, reply)
    request.locals = store as RequestLocals
    if (requestIdPolicy !== undefined) applyRequestIdPolicy(requestIdPolicy, store, request, reply)
    // Node emits the raw request's and response's events ('data', 'end',
    // 'close') in the socket's context. Running them in the store costs about
    // 8 % of a small request (measured, bench/README.md), and Fastify's own
    // lifecycle does not need it, so it is opt-in: for custom content-type
    // parsers that read locals and raw listeners such as a client's
    // disconnect.
    if (scopeRaw) scopeRequestEvents(store, request.raw, reply.raw)
    storage.run(store, next)
  })
  // Fastify runs onRequestAbort from the raw request's 'close' event and
  // onTimeout from the socket's 'timeout' event, whose async context is the
  // connection's, not the request's. A hook of either kind also costs every
  // request of the routes it covers (Fastify adds a 'close' listener, a new
  // closure, or a `_meta` object per request: 3-5 % of a small request,
  // bench/RESULTS.md), so the plugin registers none of its own. Instead each
  // such hook the application registers after it is wrapped to run in its
  // request's own store (not a saved async resource, so no other library's
  // context is replaced): an application without these hooks pays nothing.
  scopeAbortAndTimeoutHooks(fastify, storage)
  // Over HTTP/2, Node emits the response's 'finish', which runs onResponse,
  // from the stream's 'close', in the session's context: the hooks would run
  // outside the scope (on HTTP/1 the write callback that emits it carries the
  // request's). Added only on an http2 instance, so HTTP/1 pays nothing.
  if (fastify.initialConfig.http2 === true && !scopeRaw) {
    fastify.addHook('onResponse', function enterScopeOnResponse (request: FastifyRequest, _reply: FastifyReply, next: HookHandlerDoneFunction) {
      enterRequestScope(request, next)
    })
  }
  // Runs only when a request fails, so successful requests pay nothing; it
  // makes the resources' outcome 'failed' with the error that was thrown.
  fastify.addHook('onError', function recordRequestError (request: FastifyRequest, _reply: FastifyReply, error: Error, next: HookHandlerDoneFunction) {
    if (request.locals !== null) recordScopeError(request.locals as Store, error)
    next()
  })
  // The hook Fastify apps otherwise write by hand: resources end before the
  // payload is written, and a failure to end them goes to the error handler
  // (a 500). Only with the option, so other apps run no extra hook.
  if (policy.endResourcesBeforeResponse) {
    fastify.addHook('onSend', function endResourcesBeforeSending (request: FastifyRequest, reply: FastifyReply, payload: unknown, next: (err: Error | null, payload?: unknown) => void) {
      const store = request.locals as Store | null
      if (store === null || endingOf(store) === undefined) {
        next(null, payload)
        return
      }
      endResourcesNow(store, outcomeBeforeResponse(store, reply.statusCode)).then(() => { next(null, payload) }, next)
    })
  }
  scopeWebsocketConnections(fastify, storage)
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
