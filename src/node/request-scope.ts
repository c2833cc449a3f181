import { EventEmitter } from 'node:events'
import { IncomingMessage, ServerResponse } from 'node:http'
import { describe, optionsError } from '../core/errors.js'
import { compileRequestScopeOptions, type RequestScopeOptions, type RequestScopePolicy } from '../adapters/scope-options.js'
import { attachIncoming, logReplacedRequestId, resolveRequestId, type RequestIdPolicy } from '../headers/request-id.js'
import { requestClosed, requestOpened } from '../diagnostics/in-flight.js'
import { endResourcesBeforeHeaders } from './end-before-response.js'
import { attachRequest, attachResponse, detachRequest, requestOf, responseOf, type ScopeRequest, type ScopeResponse } from '../core/scope-state.js'
import { sharedStorage, type Store } from '../core/storage.js'
import { kEmit, kScopedEmit, kStore } from '../protocol/symbols.js'

// How a node:http request (and so an Express or Connect one) maps onto a
// scope. The adapters run the handler chain in storage.run(store, …), which
// covers everything the chain calls and every async operation it starts.
// What it cannot cover are the request's and response's own events: Node emits
// 'data', 'end', 'close', 'aborted' and 'error' from the socket's read and
// close callbacks, whose async context is the connection's. So a listener on
// the request stream — a body parser reading chunks, multer's fileFilter and
// storage callbacks (called from busboy, which the request is piped into),
// `req.on('close')` on an aborted upload — runs outside the scope.
//
// Body parsers such as raw-body and multer work around it for their final
// `next()` by re-entering an AsyncResource saved when the middleware ran,
// which restores the whole context of that moment and drops whatever any
// other library set since. The fix belongs one level lower, where the context
// is lost: the two emitters' `emit` is replaced, per instance, by one shared
// function that runs the emission in the request's store. Only this library's
// store changes; every other library's context stays the one the event is
// emitted in. No closure and no listener is created per request.
//
// Each property added to a request or response costs more than it seems:
// Express gives every req and res its own hidden class (Object.setPrototypeOf
// per request), so V8 builds a new one for each property added. Hence the
// store is linked from the request only (the response reaches it through
// `res.req`), and an emitter's previous `emit` is kept only when it was an
// own property, put there by another library.

const storage = sharedStorage()

interface ScopedEmitter {
  [kStore]?: Store
  [kEmit]?: EventEmitter['emit']
  emit: EventEmitter['emit']
  _events: Record<string | symbol, unknown>
}

/** The store a request was opened with, or `undefined` if none was. */
export function requestStore (request: ScopeRequest): Store | undefined {
  // Set on the request itself, never inherited. Asking first spares the
  // lookup through a chain of prototypes that mostly finds nothing, which
  // misses V8's inline caches on Express's requests (Node 20 and 22).
  return Object.hasOwn(request, kStore) ? (request as unknown as ScopedEmitter)[kStore] : undefined
}

/**
 * Where the node:http adapters log that an incoming request id was replaced:
 * any pino-compatible logger.
 *
 * @example
 * app.use(expressRequestLocals({ upstream: { trust: true }, logger: pino() }))
 */
export interface DebugLogger {
  debug: (details: object, message: string) => void
}

/**
 * The options of the Express and node:http adapters: the shared
 * {@link RequestScopeOptions} and where replaced request ids are logged.
 *
 * @example
 * expressRequestLocals({ requestId: { echoHeader: true }, logger })
 */
export interface NodeScopeOptions<Req> extends RequestScopeOptions<Req> {
  /**
   * Where a replaced incoming request id is logged, at debug level (the raw
   * value never is). Defaults to `req.log` when pino-http set one.
   */
  logger?: DebugLogger
}

/** The validated form of {@link NodeScopeOptions}, compiled once per middleware. */
export interface NodeScopePolicy<Req> extends RequestScopePolicy<Req> {
  readonly logger: DebugLogger | undefined
}

/** Validates the options of a node:http based adapter, once. */
export function compileNodeScopeOptions<Req> (options: unknown, where: string): NodeScopePolicy<Req> {
  const policy = compileRequestScopeOptions<Req>(options, where, ['logger'])
  const { logger } = options as NodeScopeOptions<Req>
  if (logger !== undefined && typeof (logger as Partial<DebugLogger> | null)?.debug !== 'function') {
    throw optionsError(`${where}.logger must have a debug(details, message) method, like a pino logger; found ${describe(logger)}.`)
  }
  return { ...policy, logger }
}

/**
 * Whether `value` looks like a node:http request (it has `rawHeaders`): how
 * the adapters recognise a factory called as if it were the handler,
 * `app.use(expressRequestLocals)` or `http.createServer(withRequestLocals)`.
 */
export function isRequestLike (value: unknown): boolean {
  return typeof value === 'object' && value !== null && Array.isArray((value as { rawHeaders?: unknown }).rawHeaders)
}

/**
 * Makes `store` the scope of one request: the point where the node:http based
 * adapters open a scope. It links the store to the request and response (the
 * response's 'close' ends the scope's resources), applies the request id
 * policy, and makes the request's and the response's events run in `store`.
 * The caller then runs its handler chain in `storage.run(store, …)`.
 */
export function openRequestScope (store: Store, request: ScopeRequest, response: ScopeResponse, policy: NodeScopePolicy<never>, scopeEvents: (store: Store, request: never, response: never) => void = scopeRequestEvents): void {
  attachRequest(store, request)
  attachResponse(store, response)
  if (policy.requestId !== undefined) applyRequestIdPolicy(policy.requestId, policy.logger, store, request, response)
  scopeEvents(store, request as never, response as never)
  // An HTTP/2 compatibility response holds its head back the same way: it
  // has writeHead, write, end and flushHeaders too.
  if (policy.endResourcesBeforeResponse) endResourcesBeforeHeaders(store, response as ServerResponse)
}

function applyRequestIdPolicy (policy: RequestIdPolicy, logger: DebugLogger | undefined, store: Store, request: ScopeRequest, response: ScopeResponse): void {
  const incoming = resolveRequestId(policy, request.rawHeaders, request)
  const { id, rejected } = incoming
  attachIncoming(store, id, incoming)
  if (rejected !== undefined) {
    const log = logger ?? (request as IncomingMessage & { log?: Partial<DebugLogger> }).log
    if (typeof log?.debug === 'function') logReplacedRequestId(log as DebugLogger, policy, rejected, { reqId: id })
  }
  if (policy.echoHeader !== undefined) response.setHeader(policy.echoHeader, id)
}

/**
 * Runs every event of `request` and `response` in `store`, for adapters that
 * attach their own request object to the store (Fastify's raw pair).
 */
export function scopeRequestEvents (store: Store, request: ScopeRequest, response: ScopeResponse): void {
  const scopedRequest = request as unknown as ScopedEmitter
  scopedRequest[kStore] = store
  keepOwnEmit(scopedRequest)
  scopedRequest.emit = emitRequestEvent
  keepOwnEmit(response as unknown as ScopedEmitter)
  response.emit = emitResponseEvent
  requestOpened()
}

const emit = EventEmitter.prototype.emit

// Kept when it is not EventEmitter's own: replaced on the instance by another
// library, or overridden by a subclass. A load and a comparison, cheaper than
// Object.hasOwn on every request.
function keepOwnEmit (emitter: ScopedEmitter): void {
  const current = emitter.emit
  if (current !== emit) emitter[kEmit] = current
}

// `arguments` and Reflect.apply pass the event and its arguments through
// without building a closure or an array per emission.

// The request emits 'close' exactly once, on every ending: after its
// response finished, when the client went away, and also for a pipelined
// request still queued behind others when its connection is cut (its
// response then never emits anything), and for an HTTP/2 stream however it
// closed. So the count of requests in flight is kept here, not on the response.
//
// An event emitted from code already in the store (res.end() in a handler
// emits 'prefinish' synchronously) is emitted directly: entering the same
// store again costs a context frame per event on Node 24 and later.
//
// So is an event nobody listens to ('readable', 'resume', 'prefinish' … on
// most requests): no code of the application runs, so there is no context to
// give it, and asking for the current store costs a call into C++ on Node 20
// (most of what scoping the events cost per request, bench/RESULTS.md).
// 'error' always runs in the store: with no listener it throws, and
// errorMonitor listeners see it first. An emit another library put in place
// (on the instance, or on Express's prototypes before this one) always does
// too: it may look at the context itself.
function emitRequestEvent (this: ScopedEmitter, event: string | symbol): boolean {
  if (event === 'close') return closeRequest(this, this[kStore] as Store, this[kEmit] ?? emit, arguments)
  return emitInStore(this, this[kStore] as Store, this[kEmit] ?? emit, event, arguments)
}

function emitResponseEvent (this: ScopedEmitter & { req: ScopedEmitter }, event: string | symbol): boolean {
  return emitInStore(this, this.req[kStore] as Store, this[kEmit] ?? emit, event, arguments)
}

function unheard (emitter: ScopedEmitter, previous: EventEmitter['emit'], event: string | symbol): boolean {
  return previous === emit && event !== 'error' && emitter._events[event] === undefined
}

function emitInStore (emitter: ScopedEmitter, store: Store, previous: EventEmitter['emit'], event: string | symbol, args: IArguments): boolean {
  if (unheard(emitter, previous, event) || storage.getStore() === store) return Reflect.apply(previous, emitter, args) as boolean
  return storage.run(store, Reflect.apply, previous, emitter, args) as boolean
}

// The request's 'close' is its last event, and on Node its response has
// closed before it, however it ended: the store then lets go of both
// (detachRequest). Where the response has not closed yet (a pipelined
// request whose body was read before its turn to answer), the store stays
// linked.
function closeRequest (request: ScopedEmitter, store: Store, previous: EventEmitter['emit'], args: IArguments): boolean {
  requestClosed()
  const emitted = emitInStore(request, store, previous, 'close', args)
  if ((responseOf(store) as { closed?: boolean } | undefined)?.closed === true) detachRequest(store)
  return emitted
}

// Express (4 and 5) gives each request and response a prototype of its own
// app (app.request, app.response), whose prototypes are Express's own request
// and response objects, whose prototypes are node:http's. Replacing `emit`
// per instance, as above, writes two properties per request on objects V8
// has already given a prototype of their own, the dearest part of opening a
// scope (4 % of a small Express request on Node 20, bench/RESULTS.md). So
// for Express the replacement is made once, on Express's own request and
// response objects (shared by every app and sub-app of that copy of
// Express, whichever of them the request is passing through when an event is
// emitted), and finds the store through what Express links already: the
// store is `res.locals`, `req.res` is the response, and the store names the
// request and response it serves. Objects that are not this request's, or no
// scope's, emit exactly as before; a scope's emit as emitInStore decides.

type ExpressRequest = IncomingMessage & { res?: ExpressResponse }
type ExpressResponse = ServerResponse & { locals?: Store }

/** The object just above node:http's prototype in `object`'s chain, if it is not node:http's own. */
function frameworkBase (object: object, nodePrototype: object): object | undefined {
  let prototype = Object.getPrototypeOf(object) as object | null
  if (prototype === nodePrototype) return undefined
  while (prototype !== null) {
    const next = Object.getPrototypeOf(prototype) as object | null
    if (next === nodePrototype) return prototype
    prototype = next
  }
  return undefined
}

// The store of an Express request or response that is in a scope, found
// through the objects Express links. Asked only when the event is not
// emitted in that store already (most are, from the request's own work): on
// Node 20 and 22 each request and response has hidden classes of its own, so
// a property read on them misses V8's inline caches and costs more than
// asking for the current store.
function expressRequestStore (request: ExpressRequest): Store | undefined {
  const store = request.res?.locals
  return store !== undefined && store !== null && requestOf(store) === request ? store : undefined
}

function expressResponseStore (response: ExpressResponse): Store | undefined {
  const store = response.locals
  return store !== undefined && store !== null && responseOf(store) === response ? store : undefined
}

function patchRequestBase (base: { emit: EventEmitter['emit'], [kScopedEmit]?: true }): void {
  if (base[kScopedEmit] === true) return
  const previous = base.emit
  base.emit = function emitInRequestStore (this: ExpressRequest & ScopedEmitter, event: string | symbol): boolean {
    // 'close' is never passed over: it is counted, and ends the scope.
    if (event !== 'close' && unheard(this, previous, event)) return Reflect.apply(previous, this, arguments) as boolean
    const current = storage.getStore()
    const store = current !== undefined && requestOf(current) === this ? current : expressRequestStore(this)
    if (store === undefined) return Reflect.apply(previous, this, arguments) as boolean
    if (event === 'close') return closeRequest(this, store, previous, arguments)
    if (current === store) return Reflect.apply(previous, this, arguments) as boolean
    return storage.run(store, Reflect.apply, previous, this, arguments) as boolean
  }
  base[kScopedEmit] = true
}

function patchResponseBase (base: { emit: EventEmitter['emit'], [kScopedEmit]?: true }): void {
  if (base[kScopedEmit] === true) return
  const previous = base.emit
  base.emit = function emitInResponseStore (this: ExpressResponse & ScopedEmitter, event: string | symbol): boolean {
    if (unheard(this, previous, event)) return Reflect.apply(previous, this, arguments) as boolean
    const current = storage.getStore()
    const store = current !== undefined && responseOf(current) === this ? current : expressResponseStore(this)
    if (store === undefined) return Reflect.apply(previous, this, arguments) as boolean
    if (current === store) return Reflect.apply(previous, this, arguments) as boolean
    return storage.run(store, Reflect.apply, previous, this, arguments) as boolean
  }
  base[kScopedEmit] = true
}

// The prototypes of the last request and response whose bases were patched:
// one comparison per request instead of a walk up the chain.
let checkedRequestPrototype: unknown
let checkedResponsePrototype: unknown

/**
 * The Express form of {@link scopeRequestEvents}: `store` must be
 * `response.locals`, and `request.res` the response. Falls back to the
 * per-instance form for objects outside Express's prototypes, or whose
 * `emit` another library replaced on the instance itself.
 */
export function scopeExpressRequestEvents (store: Store, request: IncomingMessage, response: ServerResponse): void {
  const requestPrototype = Object.getPrototypeOf(request) as unknown
  const responsePrototype = Object.getPrototypeOf(response) as unknown
  if (requestPrototype !== checkedRequestPrototype || responsePrototype !== checkedResponsePrototype) {
    const requestBase = frameworkBase(request, IncomingMessage.prototype)
    const responseBase = frameworkBase(response, ServerResponse.prototype)
    if (requestBase === undefined || responseBase === undefined || (request as ExpressRequest).res !== response) {
      scopeRequestEvents(store, request, response)
      return
    }
    patchRequestBase(requestBase as never)
    patchResponseBase(responseBase as never)
    checkedRequestPrototype = requestPrototype
    checkedResponsePrototype = responsePrototype
  }
  if (Object.hasOwn(request, 'emit') || Object.hasOwn(response, 'emit')) {
    scopeRequestEvents(store, request, response)
    return
  }
  requestOpened()
}
