import { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, optionsError } from '../core/errors.js'
import { attachIncoming, compileRequestIdPolicy, logReplacedRequestId, resolveRequestId, type RequestIdOptions, type RequestIdPolicy } from '../headers/request-id.js'
import { requestClosed, requestOpened } from '../diagnostics/in-flight.js'
import { attachRequest, attachResponse } from '../core/scope-state.js'
import { sharedStorage, type Store } from '../core/storage.js'
import { kEmit, kStore } from '../core/symbols.js'

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
}

/** The store a request was opened with, or `undefined` if none was. */
export function requestStore (request: IncomingMessage): Store | undefined {
  return (request as unknown as ScopedEmitter)[kStore]
}

/**
 * Where the node:http adapters log that an incoming request id was replaced:
 * any pino-compatible logger.
 *
 * @example
 * app.use(expressRequestLocals({ requestId: { header: true }, logger: pino() }))
 */
export interface DebugLogger {
  debug: (details: object, message: string) => void
}

/**
 * The request-id part of the Express and node:http adapters' options.
 *
 * @example
 * expressRequestLocals({ requestId: { header: 'x-request-id', echoHeader: true }, logger })
 */
export interface NodeScopeOptions {
  /**
   * The request id policy. Without it, `requestId()` is `req.id` when
   * something (pino-http) set one, else a `crypto.randomUUID()` made on first
   * read. With it, every request gets a UUID when its scope opens, or a
   * validated incoming header when `header` is set.
   */
  requestId?: RequestIdOptions
  /**
   * Where a replaced incoming request id is logged, at debug level (the raw
   * value never is). Defaults to `req.log` when pino-http set one.
   */
  logger?: DebugLogger
}

/** The validated form of {@link NodeScopeOptions}, compiled once per middleware. */
export interface NodeScopePolicy {
  readonly requestId: RequestIdPolicy | undefined
  readonly logger: DebugLogger | undefined
}

export function compileNodeScopeOptions (options: NodeScopeOptions, where: string): NodeScopePolicy {
  const { logger } = options
  if (logger !== undefined && typeof (logger as Partial<DebugLogger>)?.debug !== 'function') {
    throw optionsError(`${where} \`logger\` must have a debug(details, message) method, like a pino logger; found ${describe(logger)}.`)
  }
  return {
    requestId: options.requestId === undefined ? undefined : compileRequestIdPolicy(options.requestId, `${where} \`requestId\``),
    logger
  }
}

/**
 * Makes `store` the scope of one request: the point where the node:http based
 * adapters open a scope. It links the store to the request and response (the
 * response's 'close' ends the scope's resources), applies the request id
 * policy, and makes the request's and the response's events run in `store`.
 * The caller then runs its handler chain in `storage.run(store, …)`.
 */
export function openRequestScope (store: Store, request: IncomingMessage, response: ServerResponse, policy: NodeScopePolicy): void {
  attachRequest(store, request)
  attachResponse(store, response)
  if (policy.requestId !== undefined) applyRequestIdPolicy(policy.requestId, policy.logger, store, request, response)
  scopeRequestEvents(store, request, response)
}

function applyRequestIdPolicy (policy: RequestIdPolicy, logger: DebugLogger | undefined, store: Store, request: IncomingMessage, response: ServerResponse): void {
  const incoming = resolveRequestId(policy, request.rawHeaders)
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
export function scopeRequestEvents (store: Store, request: IncomingMessage, response: ServerResponse): void {
  const scopedRequest = request as unknown as ScopedEmitter
  scopedRequest[kStore] = store
  keepOwnEmit(scopedRequest)
  scopedRequest.emit = emitRequestEvent
  keepOwnEmit(response as unknown as ScopedEmitter)
  response.emit = emitResponseEvent
  requestOpened()
}

function keepOwnEmit (emitter: ScopedEmitter): void {
  if (Object.hasOwn(emitter, 'emit')) emitter[kEmit] = emitter.emit
}

const emit = EventEmitter.prototype.emit

// `arguments` and Reflect.apply pass the event and its arguments through
// without building a closure or an array per emission.

function emitRequestEvent (this: ScopedEmitter): boolean {
  return storage.run(this[kStore] as Store, Reflect.apply, this[kEmit] ?? emit, this, arguments) as boolean
}

// The response emits 'close' exactly once per request, after 'finish' or when
// the client went away first: the point where the request's scope ends.
function emitResponseEvent (this: ScopedEmitter & { req: ScopedEmitter }, event: string | symbol): boolean {
  if (event === 'close') requestClosed()
  return storage.run(this.req[kStore] as Store, Reflect.apply, this[kEmit] ?? emit, this, arguments) as boolean
}
