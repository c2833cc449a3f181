import { scopeEndedError } from '../core/errors.js'
import { isDetachedRequest, requestOf, responseOf, type ScopeResponse } from '../core/scope-state.js'
import type { LocalsStorage, Store } from '../core/storage.js'
import { kEnding, kFailure } from '../protocol/symbols.js'

// When a scope ends, and how. Nothing here runs for a scope that never holds
// anything to release: the watch on a response is armed by the first
// resource a scope creates, and the bookkeeping lives on the store under
// private symbols, so a request that creates no resource costs no listener
// and no allocation.

/**
 * How a scope ended: `'completed'` when its work finished (the response was
 * sent in full with a status below 500, or the `runWithLocals` function
 * returned or resolved); `'failed'` when an error was thrown (by the handler,
 * a hook, or the function) or a 5xx response was sent; `'aborted'` when it
 * ended before its work finished (the client went away, the connection or
 * request timed out, a streamed response was destroyed).
 *
 * @example
 * const status: ScopeStatus = outcome.status // 'completed' | 'failed' | 'aborted'
 */
export type ScopeStatus = 'completed' | 'failed' | 'aborted'

/**
 * What a resource's `dispose` learns about the end of its scope: commit on
 * `ok`, roll back otherwise.
 *
 * @example
 * const transaction = defineRequestResource({
 *   create: () => db.begin(),
 *   dispose: (tx, outcome) => outcome.ok ? tx.commit() : tx.rollback()
 * })
 */
export interface ScopeOutcome {
  /** True exactly when `status` is `'completed'`. */
  readonly ok: boolean
  readonly status: ScopeStatus
  /** What was thrown, when `status` is `'failed'` because of an error. */
  readonly error?: unknown
}

const completed: ScopeOutcome = Object.freeze({ ok: true, status: 'completed' })
const aborted: ScopeOutcome = Object.freeze({ ok: false, status: 'aborted' })

function failed (error: unknown): ScopeOutcome {
  return Object.freeze({ ok: false, status: 'failed', error })
}

/** How one kind of resource is made and released, as the ending protocol passes it. */
export interface ResourceDefinition {
  readonly name: string
  readonly create: () => unknown
  readonly dispose: (value: unknown, outcome: ScopeOutcome) => unknown
  /** How long a create or dispose may take at the scope's end (ms); absent before 1.0. */
  readonly disposeTimeout?: number
}

/** A dispose that failed, as the ending protocol reports it. */
export interface DisposeFailure {
  readonly name: string
  readonly error: unknown
  /** Set when the failure is the library's own timeout, reported as itself. */
  readonly timedOut?: boolean
}

/**
 * What a scope's resources leave on its store, under the registered key
 * `request-locals.ending`: protocol version 1. Two installed copies of the
 * package (an application's and one a library bundles, of any version) open,
 * use and end each other's scopes, so they meet only through these members
 * and plain data (outcomes, definitions, failures), never through a class
 * (`instanceof` is false across copies). 0.1.0 left the same members without
 * `protocol`; a later version keeps them and raises `protocol`.
 */
export interface ScopeEnding {
  /** The protocol version; absent on objects made by 0.1.0, which is version 1. */
  readonly protocol?: number
  /** True once the scope has ended: nothing new may be created in it. */
  readonly ended: boolean
  /** This scope's instance of `definition`, made on the first call. */
  get: (definition: ResourceDefinition) => Promise<unknown>
  /** Ends the scope. Every way of ending calls it; only the first call acts; failures are logged. */
  end: (outcome: ScopeOutcome) => Promise<void>
  /** Ends the scope at the application's request: the first caller gets the failures, to throw. */
  endNow: (outcome: ScopeOutcome) => Promise<readonly DisposeFailure[]>
}

type StoreWithEnd = Store & { [kEnding]?: ScopeEnding, [kFailure]?: unknown }

// For state written only when a scope uses a resource or fails, off the
// common path: it can afford defineProperty, and stays hidden from code that
// compares the store deeply (test assertions).
function setHidden (store: Store, key: symbol, value: unknown): void {
  Object.defineProperty(store, key, { value, writable: true, configurable: true, enumerable: false })
}

// Marks a scope that ended before anything was created in it, so that a
// get() from work it left running is refused rather than leaked.
const alreadyEnded: ScopeEnding = Object.freeze({
  protocol: 1,
  ended: true,
  // Never called by this copy (get() checks `ended` first); there for the protocol.
  /* c8 ignore next */
  get: (definition: ResourceDefinition) => Promise.reject(scopeEndedError(definition.name)),
  end: () => Promise.resolve(),
  endNow: () => Promise.resolve([])
})

/**
 * The ending registered on a store by its first resource, if any, whichever
 * installed copy of the package registered it.
 */
export function endingOf (store: Store): ScopeEnding | undefined {
  return (store as StoreWithEnd)[kEnding]
}

/**
 * Whether nothing may be created in the scope any more: it has ended, or the
 * response it serves is already complete or gone (or let go of).
 */
export function scopeHasEnded (store: Store): boolean {
  if ((store as StoreWithEnd)[kEnding]?.ended === true) return true
  const response = responseOf(store)
  if (response !== undefined) return responseIsOver(response)
  // Let go of once the request and its response closed (detachRequest).
  const request = requestOf(store)
  return request !== undefined && isDetachedRequest(request as object)
}

// Asked on every transport, because a response's 'close' may already have
// been emitted when the first resource is requested (the handler awaited
// while the client left): a watch armed then would wait for ever.
function responseIsOver (response: ScopeResponse): boolean {
  return response.writableEnded || (response as { destroyed?: boolean }).destroyed === true || streamOf(response)?.destroyed === true || queuedRequest(response)?.socket?.destroyed === true
}

// An HTTP/2 response (the compatibility API's, which Fastify's http2 mode
// uses too) is over when its stream is: reset by the client, its session
// destroyed or sent a GOAWAY, timed out. The response itself has no
// `destroyed`, and emits 'close' (and 'finish') from the stream's 'close'.
function streamOf (response: ScopeResponse): { destroyed: boolean } | undefined {
  return (response as { stream?: { destroyed: boolean } }).stream
}

// A pipelined HTTP/1 response waits for the ones before it on the connection
// and has no socket yet; if the connection dies meanwhile, Node emits 'close'
// on its request only (destroyed with the connection), never on that
// response.
function queuedRequest (response: ScopeResponse): { socket?: { destroyed: boolean } | null, once: (event: 'close', listener: () => void) => unknown } | undefined {
  return response.socket === null ? response.req : undefined
}

/**
 * Registers `ending` on the store and arranges for it to be called when the
 * scope ends: by the response's 'close' for a request, by runScope for a
 * runWithLocals scope (the only kind with no request). Returns false, and
 * registers nothing, for a request scope whose adapter attached no response:
 * its end could never be seen.
 */
export function watchScopeEnd (store: Store, ending: ScopeEnding): boolean {
  const response = responseOf(store)
  if (response !== undefined) {
    watchResponse(store, ending, response)
  } else if (requestOf(store) !== undefined) {
    return false
  }
  setHidden(store, kEnding, ending)
  return true
}

function watchResponse (store: Store, ending: ScopeEnding, response: ScopeResponse): void {
  // One listener per scope that holds resources, never per request: 'close'
  // is the one event Node emits on every ending (finished, aborted, timed
  // out, destroyed mid-stream, hijacked and ended by hand; for HTTP/2, the
  // stream's end however it came).
  function endWithResponse (): void {
    void ending.end(responseOutcome(store, response))
  }
  response.once('close', endWithResponse)
  // A queued pipelined response is watched through its own request, not the
  // shared socket: a listener per queued response on the socket would pile
  // up (MaxListenersExceededWarning from the 11th) and outlive the request.
  // Its request also closes when its body is done, so only a dead
  // connection ends the scope from there.
  const queued = queuedRequest(response)
  queued?.once('close', function endIfConnectionGone () {
    if (queued.socket?.destroyed === true) endWithResponse()
  })
}

function responseOutcome (store: Store, response: ScopeResponse): ScopeOutcome {
  if (kFailure in store) return failed((store as StoreWithEnd)[kFailure])
  // A request whose connection closed before its response was done is
  // aborted even if the application then ended a response (a body parser's
  // 400 for a cut-off body): nobody received it. Node sets `aborted` on the
  // request it destroys when that happens (on HTTP/2, on a stream reset
  // before its response ended).
  if (!response.writableEnded || response.req.aborted) return aborted
  return response.statusCode >= 500 ? failed(undefined) : completed
}

/**
 * Records the error that failed a request, so that the scope's outcome is
 * `'failed'` with that error even if an error response is then sent in full.
 * Adapters call it from their error path (Fastify's onError hook).
 *
 * @example
 * function recordRequestError (err, req, res, next) {
 *   recordScopeError(req.locals, err)
 *   next(err)
 * }
 */
export function recordScopeError (store: Store, error: unknown): void {
  setHidden(store, kFailure, error)
}

/**
 * The outcome of a scope that is ended before its response: failed with
 * `error` when one is given or an error was recorded, completed otherwise.
 */
export function outcomeSoFar (store: Store, error?: unknown): ScopeOutcome {
  if (error !== undefined) return failed(error)
  if (kFailure in store) return failed((store as StoreWithEnd)[kFailure])
  return completed
}

/**
 * The outcome of a scope whose resources end as its response is about to be
 * written with `statusCode`: failed with the recorded error, or when the
 * status is a 5xx; completed otherwise.
 */
export function outcomeBeforeResponse (store: Store, statusCode: number): ScopeOutcome {
  if (kFailure in store) return failed((store as StoreWithEnd)[kFailure])
  return statusCode >= 500 ? failed(undefined) : completed
}

/**
 * Ends a scope now with `outcome`, for an adapter that learns of an ending
 * the response cannot show. Returns the disposal in progress, or undefined
 * when nothing was created in the scope. Ending twice does nothing more.
 *
 * @example
 * void endScope(store, { ok: false, status: 'aborted' })
 */
export function endScope (store: Store, outcome: ScopeOutcome): Promise<void> | undefined {
  const ending = (store as StoreWithEnd)[kEnding]
  if (ending === undefined) {
    // A plain write, not setHidden: it runs at the end of every runWithLocals
    // (defineProperty would double its cost), once the scope's code is done.
    (store as StoreWithEnd)[kEnding] = alreadyEnded
    return undefined
  }
  return ending.end(outcome)
}

/**
 * Runs `fn` in `store` as a runWithLocals scope, ending the scope when `fn`
 * returns, throws, or (for a promise) settles. A returned promise settles
 * only after the scope's resources are disposed, with `fn`'s own result.
 */
export function runScope<R> (storage: LocalsStorage, store: Store, fn: () => R): R {
  let result: R
  try {
    result = storage.run(store, fn)
  } catch (error) {
    void endScope(store, failed(error))
    throw error
  }
  // Only native promises are awaited: calling `then` on another thenable (a
  // query builder) could start its work a second time.
  if (result instanceof Promise) {
    return result.then(
      function endScopeOnResolve (value: unknown) {
        const disposing = endScope(store, completed)
        return disposing === undefined ? value : disposing.then(() => value)
      },
      function endScopeOnReject (error: unknown) {
        const disposing = endScope(store, failed(error))
        if (disposing === undefined) throw error
        return disposing.then(() => { throw error })
      }
    ) as R
  }
  void endScope(store, completed)
  return result
}
