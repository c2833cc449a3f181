import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { requestOf, responseOf } from '../core/scope-state.js'
import type { LocalsStorage, Store } from '../core/storage.js'
import { kEnding, kFailure } from '../core/symbols.js'

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

/** What a scope must do when it ends; implemented by its resources. */
export interface ScopeEnding {
  /** True once the scope has ended: nothing new may be created in it. */
  readonly ended: boolean
  /** Ends the scope. Every way of ending calls it; only the first call acts. */
  end: (outcome: ScopeOutcome) => Promise<void>
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
const alreadyEnded: ScopeEnding = Object.freeze({ ended: true, end: () => Promise.resolve() })

/** The ending registered on a store by its first resource, if any. */
export function endingOf (store: Store): ScopeEnding | undefined {
  return (store as StoreWithEnd)[kEnding]
}

/**
 * Whether nothing may be created in the scope any more: it has ended, or the
 * response it serves is already complete or gone.
 */
export function scopeHasEnded (store: Store): boolean {
  if ((store as StoreWithEnd)[kEnding]?.ended === true) return true
  const response = responseOf(store)
  return response !== undefined && responseIsOver(response)
}

function responseIsOver (response: ServerResponse): boolean {
  return response.writableEnded || response.destroyed || queuedSocket(response)?.destroyed === true
}

// A pipelined response waits for the ones before it on the connection and has
// no socket yet; if the connection dies meanwhile, Node emits 'close' on the
// socket only, never on that response.
function queuedSocket (response: ServerResponse): Socket | undefined {
  return response.socket === null ? response.req.socket : undefined
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

function watchResponse (store: Store, ending: ScopeEnding, response: ServerResponse): void {
  const socket = queuedSocket(response)
  // One listener per scope that holds resources, never per request: 'close'
  // is the one event Node emits on every ending (finished, aborted, timed
  // out, destroyed mid-stream, hijacked and ended by hand).
  function endWithResponse (): void {
    socket?.removeListener('close', endWithResponse)
    void ending.end(responseOutcome(store, response))
  }
  response.once('close', endWithResponse)
  socket?.once('close', endWithResponse)
}

function responseOutcome (store: Store, response: ServerResponse): ScopeOutcome {
  if (kFailure in store) return failed((store as StoreWithEnd)[kFailure])
  // A request whose connection closed before its response was done is
  // aborted even if the application then ended a response (a body parser's
  // 400 for a cut-off body): nobody received it. Node sets `aborted` on the
  // request it destroys when that happens.
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
