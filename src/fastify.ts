import fp from 'fastify-plugin'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { describe, optionsError } from './core/errors.js'
import { sharedStorage, type LocalsStorage, type Store } from './core/storage.js'
import { recordScopeError } from './lifecycle/scope-end.js'
import { attachRequest, attachResponse } from './core/scope-state.js'
import { attachIncoming, compileRequestIdPolicy, logReplacedRequestId, resolveRequestId, type IncomingRequestId, type RequestIdOptions, type RequestIdPolicy } from './headers/request-id.js'
import { scopeRequestEvents } from './node/request-scope.js'
import { compileDefaults } from './core/store.js'
import { scopeWebsocketConnections } from './node/websocket.js'
import type { RequestLocals } from './core/request-locals.js'
import { kIncomingRequestId } from './core/symbols.js'

/**
 * Options of the Fastify plugin.
 *
 * @example
 * await app.register(fastifyRequestLocals, {
 *   defaults: (request) => ({ tenant: String(request.headers['x-tenant'] ?? 'public') }),
 *   requestId: { header: 'x-request-id', echoHeader: true }
 * })
 */
export interface FastifyRequestLocalsOptions {
  /**
   * The values each request starts with: a function called per request, or a
   * plain-data object copied per request (never shared between requests).
   */
  defaults?: Partial<RequestLocals> | ((request: FastifyRequest) => Partial<RequestLocals>)
  /**
   * The request id policy. Without it, `request.id` stays Fastify's own
   * (`req-1`, `req-2` …). With it, the plugin sets Fastify's id generator:
   * every request gets a `crypto.randomUUID()`, or a validated incoming
   * header when `header` is set. Leave Fastify's own `requestIdHeader`
   * option unset: it accepts any raw value.
   */
  requestId?: RequestIdOptions
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

export type { RequestIdOptions, RequestIdRejection } from './headers/request-id.js'
export type { InboundBaggageOptions } from './headers/baggage.js'

// The id decision is made in Fastify's genReqId, before the request (and its
// logger) exists; the onRequest hook picks the rest of it up from here.
type RawWithIncoming = IncomingMessage & { [kIncomingRequestId]?: IncomingRequestId }

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's locals: the same store `requestLocal` reads and writes. */
    locals: RequestLocals
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

// The two hook kinds Fastify runs outside the request's async context.
const kScopedHooks: ReadonlySet<string> = new Set(['onRequestAbort', 'onTimeout'])

type AnyHook = (this: unknown, request: FastifyRequest, ...rest: unknown[]) => unknown

// One wrapper per registered hook, none per request. `arguments` and
// Reflect.apply keep Fastify's `this` (the instance) and its `done` callback;
// the hook's own result (a promise for an async hook) is returned as is.
function inRequestScope (storage: LocalsStorage, hook: AnyHook): AnyHook {
  return function runHookInRequestScope (this: unknown, request: FastifyRequest) {
    // null when the request failed before the plugin's onRequest hook ran.
    const store = request.locals as Store | null
    if (store === null) return Reflect.apply(hook, this, arguments)
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
  let policy: RequestIdPolicy | undefined
  if (options.requestId !== undefined) {
    try {
      policy = compileRequestIdPolicy(options.requestId, 'The request-locals plugin option `requestId`')
    } catch (err) {
      done(err as Error)
      return
    }
    if (fastify.initialConfig.requestIdHeader !== false) {
      done(optionsError(
        `The request-locals plugin option \`requestId\` conflicts with Fastify's own requestIdHeader option (found ${JSON.stringify(fastify.initialConfig.requestIdHeader)}), ` +
        'which accepts any raw header value ahead of the plugin\'s validation. ' +
        `Remove requestIdHeader from Fastify's options and pass { requestId: { header: ${JSON.stringify(fastify.initialConfig.requestIdHeader)} } } to the plugin instead.`
      ))
      return
    }
    const accepted = policy
    fastify.setGenReqId(function requestIdByPolicy (raw: RawWithIncoming): string {
      const incoming = resolveRequestId(accepted, raw.rawHeaders)
      raw[kIncomingRequestId] = incoming
      return incoming.id
    })
  }
  const scopeRaw = options.scopeRawEvents ?? false
  if (typeof scopeRaw !== 'boolean') {
    done(optionsError(`The request-locals plugin option \`scopeRawEvents\` must be a boolean; found ${describe(scopeRaw)}.`))
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
    // The raw response's 'close' ends the scope's resources, on every path
    // (sent, thrown, aborted, timed out, hijacked, streamed).
    attachResponse(store, reply.raw)
    request.locals = store as RequestLocals
    if (policy !== undefined) applyRequestIdPolicy(policy, store, request, reply)
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
  // Runs only when a request fails, so successful requests pay nothing; it
  // makes the resources' outcome 'failed' with the error that was thrown.
  fastify.addHook('onError', function recordRequestError (request: FastifyRequest, _reply: FastifyReply, error: Error, next: HookHandlerDoneFunction) {
    if (request.locals !== null) recordScopeError(request.locals as Store, error)
    next()
  })
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
