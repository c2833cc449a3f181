import type { IncomingMessage, ServerResponse } from 'node:http'
import { endResourcesNow } from '../lifecycle/resources.js'
import { endingOf, outcomeBeforeResponse, recordScopeError } from '../lifecycle/scope-end.js'
import type { Store } from '../core/storage.js'
import { kHold } from '../protocol/symbols.js'

// `endResourcesBeforeResponse` for node:http based adapters (Express,
// Connect, withRequestLocals): the request's resources (a transaction) end
// before the response's headers go out, so that a failed COMMIT can still
// become a 500. Headers are committed by the first of writeHead(), write(),
// end() and flushHeaders() (res.json, res.send, res.redirect, res.sendStatus,
// a 304 or a HEAD answer and a piped stream all end up in one of them), so
// these four are held: the first call, when the scope has made a resource,
// starts the ending and queues itself and every later call; once the
// resources have ended, the queue is replayed in order. A scope that made no
// resource passes straight through. Middleware that wraps these methods
// after this one (compression) calls through the held ones, so its output
// is held too.

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders'
const methods: readonly Method[] = ['writeHead', 'write', 'end', 'flushHeaders']

interface Hold {
  readonly store: Store
  /** The methods as they were before this module replaced them. */
  readonly original: Record<Method, (...args: unknown[]) => unknown>
  /** Undefined until the first call; then the calls waiting for the resources to end. */
  queue: Array<{ method: Method, args: IArguments }> | undefined
  done: boolean
}

interface HeldResponse extends ServerResponse {
  [kHold]: Hold
  req: IncomingMessage & { next?: unknown, log?: { error?: unknown } }
}

/**
 * Makes `response` end the resources of `store` before its headers are
 * written; a failure to end them (a failed COMMIT) becomes a 500: passed to
 * Express's error handlers when the request has Express's `req.next`,
 * answered with a plain 500 otherwise.
 */
export function endResourcesBeforeHeaders (store: Store, response: ServerResponse): void {
  const held = response as HeldResponse
  const original = {} as Hold['original']
  for (const method of methods) original[method] = held[method] as (...args: unknown[]) => unknown
  held[kHold] = { store, original, queue: undefined, done: false }
  response.writeHead = holdWriteHead as ServerResponse['writeHead']
  response.write = holdWrite as ServerResponse['write']
  response.end = holdEnd as ServerResponse['end']
  response.flushHeaders = holdFlushHeaders
}

// Returns true when the call was queued, false when it must run now.
function held (response: HeldResponse, method: Method, args: IArguments): boolean {
  const hold = response[kHold]
  if (hold.done) return false
  if (hold.queue === undefined) {
    if (endingOf(hold.store) === undefined || response.headersSent) {
      hold.done = true
      return false
    }
    hold.queue = []
    // writeHead(status) has not set statusCode yet.
    const status = method === 'writeHead' && typeof args[0] === 'number' ? args[0] : response.statusCode
    endResourcesNow(hold.store, outcomeBeforeResponse(hold.store, status)).then(
      () => { replay(response, hold) },
      (error: unknown) => { failResponse(response, hold, error) }
    )
  }
  hold.queue.push({ method, args })
  return true
}

function holdWriteHead (this: HeldResponse): unknown {
  if (held(this, 'writeHead', arguments)) return this
  return Reflect.apply(this[kHold].original.writeHead, this, arguments)
}

function holdWrite (this: HeldResponse): unknown {
  // false: a stream piped into the response waits for 'drain', sent on replay.
  if (held(this, 'write', arguments)) return false
  return Reflect.apply(this[kHold].original.write, this, arguments)
}

function holdEnd (this: HeldResponse): unknown {
  if (held(this, 'end', arguments)) return this
  return Reflect.apply(this[kHold].original.end, this, arguments)
}

function holdFlushHeaders (this: HeldResponse): void {
  if (held(this, 'flushHeaders', arguments)) return
  Reflect.apply(this[kHold].original.flushHeaders, this, arguments)
}

function replay (response: HeldResponse, hold: Hold): void {
  hold.done = true
  let wrote = false
  let ended = false
  for (const { method, args } of hold.queue as NonNullable<Hold['queue']>) {
    Reflect.apply(hold.original[method], response, args)
    if (method === 'write') wrote = true
    if (method === 'end') ended = true
  }
  // The writes were answered false: a piped stream is waiting for this.
  if (wrote && !ended && !response.writableNeedDrain) response.emit('drain')
}

// Headers that describe the body that is now not sent.
const bodyHeaders = ['content-type', 'content-length', 'content-encoding', 'content-disposition', 'etag', 'last-modified', 'transfer-encoding']

function failResponse (response: HeldResponse, hold: Hold, error: unknown): void {
  hold.done = true
  recordScopeError(hold.store, error)
  if (response.destroyed || response.headersSent) return
  response.statusCode = 500
  for (const name of bodyHeaders) response.removeHeader(name)
  const { next } = response.req
  if (typeof next === 'function') {
    // Express: the application's error handlers answer, as for any error.
    next(error)
    return
  }
  const log = response.req.log
  if (typeof log?.error === 'function') {
    try {
      (log.error as (details: object, message: string) => void)({ err: error }, 'request-locals: ending the request\'s resources failed; answered 500')
    } catch {
      process.emitWarning(error as Error)
    }
  } else {
    process.emitWarning(error as Error)
  }
  response.setHeader('content-type', 'text/plain; charset=utf-8')
  response.end('Internal Server Error\n')
}
