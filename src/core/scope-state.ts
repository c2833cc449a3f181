import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import type { Store } from './storage.js'
import { kLogBindings, kReply, kRequest, kRequestId, kRequestLog, kResponse, kTrace } from '../protocol/symbols.js'

// What the library keeps about a scope besides its values hangs off the store
// under private symbols, one per feature: a property write per request, no
// extra allocation, no module-level map, and it becomes unreachable together
// with the store. Symbol keys are invisible through the proxy (Object.keys,
// JSON, inspect, `in`) and are not copied into nested scopes, except the
// request's identity (see inheritIdentity). They are
// registered (Symbol.for), like the storage, so that two installed copies of
// the package, which share the storage, also read each other's state.

/**
 * The part of a W3C trace context a request carries on to the calls it
 * makes: its trace id and its trace flags (sampled or not). The incoming
 * parent id is not kept: each outgoing call gets a span id of its own.
 *
 * @example
 * const trace: TraceContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '01' }
 */
export interface TraceContext {
  readonly traceId: string
  readonly flags: string
}

/** A request of a node:http or node:http2 (compatibility API) server. */
export type ScopeRequest = IncomingMessage | Http2ServerRequest

/**
 * The response a request scope serves: node:http's, or node:http2's
 * compatibility API's (which Fastify's http2 mode uses). Its 'close' ends
 * the scope on both transports.
 */
export type ScopeResponse = ServerResponse | Http2ServerResponse

type StoreWithState = Store & {
  [kRequest]?: unknown
  [kResponse]?: ScopeResponse
  [kRequestId]?: string
  [kTrace]?: TraceContext
  [kLogBindings]?: Readonly<Record<string, unknown>>
  [kReply]?: unknown
  [kRequestLog]?: unknown
}

/** Links a store to the framework request it serves. */
export function attachRequest (store: Store, request: unknown): void {
  (store as StoreWithState)[kRequest] = request
}

/**
 * Links a store to the node:http response it serves, so that per-request
 * resources can be released when that response closes. Every adapter calls
 * it when it opens a request's scope (Fastify passes `reply.raw`).
 *
 * @example
 * const store = makeStore(req)
 * attachRequest(store, req)
 * attachResponse(store, res)
 * storage.run(store, next)
 */
export function attachResponse (store: Store, response: ScopeResponse): void {
  (store as StoreWithState)[kResponse] = response
}

/** Links a store to the framework's reply object (Fastify's reply), where it is not the node:http response. */
export function attachReply (store: Store, reply: unknown): void {
  (store as StoreWithState)[kReply] = reply
}

/** The framework's reply object, if an adapter attached one. */
export function replyOf (store: Store): unknown {
  return (store as StoreWithState)[kReply]
}

/** The request logger this package made for the scope, if it made one. */
export function requestLogOf (store: Store): unknown {
  return (store as StoreWithState)[kRequestLog]
}

export function setRequestLog (store: Store, logger: unknown): void {
  (store as StoreWithState)[kRequestLog] = logger
}

/** The framework request a store serves, if an adapter attached one. */
export function requestOf (store: Store): unknown {
  return (store as StoreWithState)[kRequest]
}

/** The node:http response a store serves, if an adapter attached one. */
export function responseOf (store: Store): ScopeResponse | undefined {
  return (store as StoreWithState)[kResponse]
}

/**
 * The scope's request id, settled on first read: the id recorded when the
 * scope opened, else the framework request's own `id` (Fastify's
 * request.id, pino-http's numeric req.id), else a fresh UUID (runWithLocals scopes). Lazy, so requests
 * that never ask for it cost nothing.
 */
export function requestIdOf (store: Store): string {
  const state = store as StoreWithState
  let id = state[kRequestId]
  if (id === undefined) {
    const own = (state[kRequest] as { id?: unknown } | undefined)?.id
    id = typeof own === 'string' || typeof own === 'number' ? String(own) : randomUUID()
    state[kRequestId] = id
  }
  return id
}

/**
 * Unlinks a store from the request, response and reply it served, once they
 * are over. Node keeps the context of the last thing a request did alive
 * well after it (the keep-alive timer of an idle connection is created as
 * its response finishes), and with it the store: linked, the store would
 * keep the whole request, its response and their buffers alive as long. What
 * work still running in the scope may ask of the request, its own `id` and
 * `log`, stays readable.
 */
export function detachRequest (store: Store): void {
  const state = store as StoreWithState
  const request = state[kRequest] as { id?: unknown, log?: unknown }
  // Own properties only, as every framework and logger sets them: looking
  // for a missing one walks the request's long chain of prototypes, which on
  // Node 20 and 22 also misses V8's inline caches (every Express request has
  // hidden classes of its own there).
  const detached: DetachedRequest = {
    id: Object.hasOwn(request, 'id') ? request.id : undefined,
    log: Object.hasOwn(request, 'log') ? request.log : undefined,
    detached: true
  }
  state[kRequest] = detached
  state[kResponse] = undefined
  // Only Fastify's stores have a reply: a new property costs a new shape.
  if (state[kReply] !== undefined) state[kReply] = undefined
}

/** What a store keeps of its request once detachRequest let it go. */
interface DetachedRequest {
  readonly id: unknown
  readonly log: unknown
  readonly detached: true
}

/** Whether `request`, a store's request (requestOf), is what detachRequest kept of it. */
export function isDetachedRequest (request: object): boolean {
  return (request as Partial<DetachedRequest>).detached === true
}

/** Records the id and the trace a request was given when its scope opened. */
export function attachRequestId (store: Store, id: string, trace?: TraceContext): void {
  (store as StoreWithState)[kRequestId] = id
  if (trace !== undefined) (store as StoreWithState)[kTrace] = trace
}

/** The trace the scope continues, if any: outgoing calls carry it on. */
export function traceOf (store: Store): TraceContext | undefined {
  return (store as StoreWithState)[kTrace]
}

export function traceIdOf (store: Store): string | undefined {
  return (store as StoreWithState)[kTrace]?.traceId
}

export function logBindingsOf (store: Store): Readonly<Record<string, unknown>> | undefined {
  return (store as StoreWithState)[kLogBindings]
}

export function setLogBindings (store: Store, bindings: Readonly<Record<string, unknown>>): void {
  (store as StoreWithState)[kLogBindings] = bindings
}

/**
 * A nested scope (runWithLocals inside a request) still serves the same
 * request, so its log lines must carry the same id, trace id and log fields
 * (a parent without an id yet gets it now, so that both share one).
 * These are never mutated in place (bindings are replaced on each add), so
 * sharing them cannot leak a nested scope's additions outward. The request
 * object itself is not inherited: its logger is mutable.
 */
export function inheritIdentity (store: Store, parent: Store): void {
  const from = parent as StoreWithState
  const to = store as StoreWithState
  to[kRequestId] = requestIdOf(parent)
  if (from[kTrace] !== undefined) to[kTrace] = from[kTrace]
  if (from[kLogBindings] !== undefined) to[kLogBindings] = from[kLogBindings]
}
