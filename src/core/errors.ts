import { lostContextHint } from '../diagnostics/debug.js'
import { inFlightHint } from '../diagnostics/in-flight.js'
import { kErrorBrand } from '../protocol/symbols.js'
import { reservedKeyList } from './reserved-keys.js'

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
  | 'ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT'

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

  // `err instanceof RequestLocalsError` must hold for an error thrown by
  // another installed copy of the package (a library bundling its own, of
  // any version), whose class is a different object: the check is a
  // registered brand on the prototype. Subclasses keep the ordinary check.
  static override [Symbol.hasInstance] (value: unknown): boolean {
    if (this !== RequestLocalsError) return Function.prototype[Symbol.hasInstance].call(this, value)
    return typeof value === 'object' && value !== null && (value as { [kErrorBrand]?: unknown })[kErrorBrand] === true
  }
}

Object.defineProperty(RequestLocalsError.prototype, kErrorBrand, { value: true, enumerable: false, writable: false, configurable: false })

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
    `(${reasonOf(cause)}). Expected plain data that can be posted to a worker thread. ` +
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
    `Expected a string key other than the reserved ${reservedKeyList} ` +
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
  const reason = reasonOf(cause)
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_DISPOSE_FAILED',
    `Disposing the request resource "${name}" failed: ${reason}. ` +
    'The other resources of the scope were still disposed and the response was not affected. ' +
    'Make dispose release the resource even when it fails (for example release a connection in a finally block).',
    { cause }
  )
}

export function earlyDisposeFailedError (names: string[], causes: unknown[]): RequestLocalsError {
  const reason = causes.map(reasonOf).join('; ')
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_DISPOSE_FAILED',
    `Disposing the request resource${names.length > 1 ? 's' : ''} ${names.map((name) => `"${name}"`).join(', ')} failed: ${reason}. ` +
    'The other resources of the scope were still disposed. The response has not been sent yet: ' +
    'answer with an error (for a transaction, the commit did not happen).',
    { cause: causes.length === 1 ? causes[0] : new AggregateError(causes, reason) }
  )
}

export function disposeTimeoutError (name: string, stage: 'create' | 'dispose', ms: number): RequestLocalsError {
  const what = stage === 'create'
    ? `Creating the request resource "${name}" did not settle within ${ms} ms of its scope's end. ` +
      'The other resources of the scope were disposed without waiting for it; if it is ever made, it is disposed then. '
    : `Disposing the request resource "${name}" did not settle within ${ms} ms. ` +
      'The other resources of the scope were disposed after it without waiting further; it is not awaited again. '
  return new RequestLocalsError(
    'ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT',
    what +
    `Expected ${stage} to settle within the resource's disposeTimeout. ` +
    `Give ${stage} a timeout of its own (a query or connect timeout), or raise disposeTimeout in defineRequestResource({ name: '${name}', disposeTimeout }).`
  )
}

// Messages are built from values the library did not make (what a dispose
// rejected with, a value that failed to clone): null-prototype objects,
// symbols, proxies, objects whose toString or message getter throws. Nothing
// here may throw while describing them, or the error about one failure
// becomes a crash of its own.

/** What a thrown or rejected value says about itself, never throwing. */
export function reasonOf (cause: unknown): string {
  try {
    const message = (typeof cause === 'object' || typeof cause === 'function') && cause !== null
      ? (cause as { message?: unknown }).message
      : undefined
    if (typeof message === 'string') return message
    if (typeof cause === 'string') return cause
    if (typeof cause === 'symbol') return cause.toString()
    if (typeof cause !== 'object' && typeof cause !== 'function') return String(cause)
  } catch {
    // A throwing getter or proxy trap: fall back to the value's type.
  }
  return describe(cause)
}

/**
 * Describes a refused string by its length only, for values that must not be
 * echoed (a forged id may carry log lines).
 *
 * @example
 * describeHiddenString('a\r\nb', 'not shown') // 'a string of 4 characters (not shown)'
 */
export function describeHiddenString (value: string, note: string): string {
  return `a string of ${value.length} ${value.length === 1 ? 'character' : 'characters'} (${note})`
}

/** Names a value's type the way messages show it: `null`, `array`, `function`, `string` … Never throws. */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'object') {
    try {
      if (Array.isArray(value)) return 'an array'
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name
      if (typeof name === 'string' && name !== '') return `an instance of ${name}`
      return Object.getPrototypeOf(value) === null ? 'an object with no prototype' : 'an object with a custom prototype'
    } catch {
      // A revoked proxy, or a getter that throws.
      return 'an object'
    }
  }
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`
}
