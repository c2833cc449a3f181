import { lostContextHint } from '../diagnostics/debug.js'
import { inFlightHint } from '../diagnostics/in-flight.js'

/**
 * The stable codes a {@link RequestLocalsError} can carry. Match on `code`,
 * never on `message`: messages may be reworded, codes never change.
 *
 * @example
 * if (err instanceof RequestLocalsError && err.code === 'ERR_REQUEST_LOCALS_NO_SCOPE') {
 *   // the code ran outside a request: fall back or rethrow
 * }
 */
export type RequestLocalsErrorCode =
  | 'ERR_REQUEST_LOCALS_NO_SCOPE'
  | 'ERR_REQUEST_LOCALS_RESERVED_KEY'
  | 'ERR_REQUEST_LOCALS_OPTIONS'
  | 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT'
  | 'ERR_REQUEST_LOCALS_NOT_CLONEABLE'
  | 'ERR_REQUEST_LOCALS_INVALID_SNAPSHOT'
  | 'ERR_REQUEST_LOCALS_SCOPE_ENDED'
  | 'ERR_REQUEST_LOCALS_DISPOSE_FAILED'

/**
 * The one error class this library throws. `code` is stable; `message`
 * says what was expected, what was found and how to fix it.
 *
 * @example
 * try {
 *   requestLocal.user
 * } catch (err) {
 *   if (err instanceof RequestLocalsError) console.error(err.code, err.message)
 * }
 */
export class RequestLocalsError extends Error {
  /** A stable identifier of the failure, safe to match on. */
  readonly code: RequestLocalsErrorCode

  constructor (code: RequestLocalsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RequestLocalsError'
    this.code = code
  }
}

// Message builders live here so that every wording is written once and the
// modules that throw stay short.

export function noScopeError (key: string, access: 'read' | 'written' | 'deleted'): RequestLocalsError {
  const verb = access === 'read' ? 'was read' : access === 'written' ? 'was written' : 'was deleted'
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_NO_SCOPE',
    `requestLocal.${key} ${verb} outside a request scope. ` +
    'Expected a scope opened by the request-locals plugin or middleware, or by runWithLocals(); found none. ' +
    'Register the plugin/middleware before the routes and hooks that use it, ' +
    'wrap background work in runWithLocals(values, fn), ' +
    'or use tryGetLocals() where running outside a request is expected.' +
    inFlightHint() +
    lostContextHint()
  )
}

/**
 * NO_SCOPE for a call (not a key) that needs the current scope; `fix` says
 * where the call belongs.
 */
export function noScopeCallError (call: string, fix: string): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_NO_SCOPE',
    `${call} was called outside a request scope. ` +
    'Expected a scope opened by the request-locals plugin or middleware, or by runWithLocals(); found none. ' +
    fix +
    inFlightHint() +
    lostContextHint()
  )
}

export function notCloneableError (key: string, value: unknown, cause: unknown): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_NOT_CLONEABLE',
    `snapshotLocals(): requestLocal.${key} cannot be snapshotted: structuredClone failed on ${describe(value)} ` +
    `(${(cause as Error).message}). Expected plain data that can be posted to a worker thread. ` +
    `Leave "${key}" out of the keys, or store plain data (an id, a plain object) and rebuild the object where the snapshot is reopened.`,
    { cause }
  )
}

/** NOT_CLONEABLE for a value of a JSON snapshot; `path` goes down to it (requestLocal.user.since). */
export function notJsonError (path: string, found: string, fix: string): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_NOT_CLONEABLE',
    `snapshotLocals(): ${path} cannot be snapshotted as JSON: found ${found}. ` +
    'Expected JSON data (plain objects, arrays, strings, finite numbers, booleans, null), which a job queue stores unchanged. ' +
    `${fix} For a snapshot that only goes to a worker thread, pass { transport: 'structured-clone' }.`
  )
}

/**
 * INVALID_SNAPSHOT for a `$requestLocals` field that snapshotLocals() would
 * never have written. `found` describes the value without showing it: a
 * forged id may carry forged log lines.
 */
export function invalidSnapshotError (field: string, expected: string, found: string): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_INVALID_SNAPSHOT',
    `runWithLocals(values): values.${field} cannot be reopened: expected ${expected}, as snapshotLocals() writes it; found ${found}. ` +
    'The snapshot was altered on its way (a job queue anyone can write to) or made by other code than snapshotLocals(). ' +
    'Refuse the job, or delete values.$requestLocals to run it under a fresh request id.'
  )
}

export function reservedKeyError (key: string | symbol, where: string): RequestLocalsError {
  const shown = typeof key === 'symbol' ? key.toString() : JSON.stringify(key)
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_RESERVED_KEY',
    `${where}: the key ${shown} cannot be stored. ` +
    'Expected a string key other than "then", "toJSON", "__proto__", "constructor", "prototype" and "$requestLocals" ' +
    '(they would make the locals look like a promise, change how they serialise, reach Object.prototype, ' +
    `or be taken for the request id a snapshot carries); found ${shown}. ` +
    'Rename the key.'
  )
}

export function optionsError (message: string, cause?: unknown): RequestLocalsError {
  return new RequestLocalsError('ERR_REQUEST_LOCALS_OPTIONS', message, cause === undefined ? undefined : { cause })
}

/**
 * INVALID_ARGUMENT for a factory registered uncalled (`app.use(expressRequestLocals)`)
 * or called where it should be registered (`app.register(fastifyRequestLocals())`).
 */
export function uncalledFactoryError (found: string, fix: string): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_INVALID_ARGUMENT',
    `request-locals is set up wrongly: expected ${fix}; found ${found}, which would leave every request waiting for a response. Write ${fix} instead.`
  )
}

export function invalidArgumentError (message: string): RequestLocalsError {
  return new RequestLocalsError('ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message)
}

export function unwatchedScopeError (name: string): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_NO_SCOPE',
    `The request resource "${name}" was requested in a scope whose end request-locals cannot see. ` +
    'Expected a scope opened by the request-locals plugin or middleware (which watch the response) or by runWithLocals(); ' +
    'found one opened otherwise, so the resource could never be disposed. ' +
    'Open request scopes with the request-locals plugin or middleware.'
  )
}

export function scopeEndedError (name: string): RequestLocalsError {
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_SCOPE_ENDED',
    `The request resource "${name}" was requested after its scope ended ` +
    '(the response was sent or the connection closed, or the runWithLocals function settled). ' +
    'Expected get() while the request is in progress; found its scope over, and a resource created now would outlive its request, ' +
    'so none is created (one whose creation was still running has been disposed). ' +
    'Get resources before the response is sent, await work before ending the request, ' +
    'and give background work its own scope with runWithLocals(values, fn).'
  )
}

export function disposeFailedError (name: string, cause: unknown): RequestLocalsError {
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_DISPOSE_FAILED',
    `Disposing the request resource "${name}" failed: ${reason}. ` +
    'The other resources of the scope were still disposed and the response was not affected. ' +
    'Make dispose release the resource even when it fails (for example release a connection in a finally block).',
    { cause }
  )
}

export function earlyDisposeFailedError (names: string[], causes: unknown[]): RequestLocalsError {
  const reason = causes.map((cause) => cause instanceof Error ? cause.message : String(cause)).join('; ')
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_DISPOSE_FAILED',
    `Disposing the request resource${names.length > 1 ? 's' : ''} ${names.map((name) => `"${name}"`).join(', ')} failed: ${reason}. ` +
    'The other resources of the scope were still disposed. The response has not been sent yet: ' +
    'answer with an error (for a transaction, the commit did not happen).',
    { cause: causes.length === 1 ? causes[0] : new AggregateError(causes, reason) }
  )
}

/** Names a value's type the way messages show it: `null`, `array`, `function`, `string` … */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name
    return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'an object with a custom prototype'
  }
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`
}
