import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString, LogFn, Logger } from 'pino'
import { describe, invalidArgumentError, noScopeCallError } from './core/errors.js'
import { logBindingsOf, requestIdOf, requestOf, setLogBindings, traceIdOf } from './core/scope-state.js'
import { sharedStorage, type Store } from './core/storage.js'
import { isReservedKey } from './core/reserved-keys.js'
import type { RequestLocals } from './core/request-locals.js'

// Only types come from pino: it is an optional peer dependency, and the
// loggers this module handles are the application's own instances.

/**
 * A logger module code can hold at module level: inside a request it writes
 * through that request's logger, outside any scope through the root.
 *
 * @example
 * const log: RequestLogger = requestLogger(rootLogger)
 * log.info({ noteId }, 'note saved')
 */
export interface RequestLogger {
  /** The level of the logger current now (the request's, or the root's). */
  level: LevelWithSilentOrString
  fatal: LogFn
  error: LogFn
  warn: LogFn
  info: LogFn
  debug: LogFn
  trace: LogFn
  silent: LogFn
  /** A child of the logger current now: taken in a request, it stays that request's. */
  child: (bindings: Bindings, options?: ChildLoggerOptions) => Logger
  /** The bindings of the logger current now. */
  bindings: () => Bindings
  isLevelEnabled: (level: LevelWithSilentOrString) => boolean
}

/**
 * Options of {@link requestLogger} and {@link logMixin}.
 *
 * @example
 * requestLogger(root, { requestIdKey: 'requestId' })
 */
export interface RequestLogOptions {
  /** The field that carries the request id (default `reqId`, as Fastify's). */
  requestIdKey?: string
}

/**
 * Options of {@link logMixin}.
 *
 * @example
 * logMixin({ locals: ['tenant'], traceIdKey: 'trace_id' })
 */
export interface LogMixinOptions extends RequestLogOptions {
  /** The field that carries the request's trace id, when it has one (default `traceId`). */
  traceIdKey?: string
  /** Locals copied onto every line written inside a request, when set. */
  locals?: ReadonlyArray<keyof RequestLocals & string>
}

const storage = sharedStorage()

/** The logger the framework made for this request (Fastify's request.log, pino-http's req.log). */
function frameworkLogger (store: Store): Logger | undefined {
  const request = requestOf(store) as { log?: unknown } | undefined
  const log = request?.log
  return typeof log === 'object' && log !== null ? log as Logger : undefined
}

function requestIdKeyOf (options: RequestLogOptions, where: string): string {
  const key = options.requestIdKey ?? 'reqId'
  if (typeof key !== 'string' || key === '') throw invalidArgumentError(`${where} option requestIdKey must be a non-empty string; found ${describe(key)}.`)
  return key
}

/**
 * A pino-compatible logger for module-level code. Inside a request it writes
 * through that request's logger — in Fastify `request.log` (which carries
 * `reqId`), elsewhere a child of `root` with the request id, made on the
 * first line the request logs — plus the fields added by
 * {@link addLogBindings}. Outside any scope it writes through `root`. It
 * never throws for lack of a scope.
 *
 * In Fastify, pass the same pino instance as Fastify's `loggerInstance`.
 *
 * @example
 * import pino from 'pino'
 * import { requestLogger } from 'request-locals/pino'
 *
 * export const root = pino()
 * export const log = requestLogger(root)
 *
 * export async function saveNote (note) {
 *   log.info({ noteId: note.id }, 'saving note') // carries reqId and userId
 * }
 */
export function requestLogger (root: Logger, options: RequestLogOptions = {}): RequestLogger {
  if (typeof root !== 'object' || root === null || typeof root.child !== 'function') {
    throw invalidArgumentError(`requestLogger(root) expects a pino logger; found ${describe(root)}. Pass the application's pino instance, e.g. requestLogger(pino()).`)
  }
  const idKey = requestIdKeyOf(options, 'requestLogger(root, options):')
  // Per requestLogger, so that two roots never share a request's logger. It
  // is found again when addLogBindings replaced the bindings it was made from.
  const kLogger = Symbol('request-locals.logger')
  const kMadeFrom = Symbol('request-locals.logger-bindings')
  type StoreWithLogger = Store & { [kLogger]?: Logger, [kMadeFrom]?: Readonly<Bindings> }

  function current (): Logger {
    const store = storage.getStore() as StoreWithLogger | undefined
    if (store === undefined) return root
    const bindings = logBindingsOf(store)
    const cached = store[kLogger]
    if (cached !== undefined && store[kMadeFrom] === bindings) return cached
    const logger = makeLogger(store, bindings)
    store[kLogger] = logger
    store[kMadeFrom] = bindings
    return logger
  }

  function makeLogger (store: Store, bindings: Readonly<Bindings> | undefined): Logger {
    const framework = frameworkLogger(store)
    if (framework !== undefined) {
      // A pino request logger got the bindings in place (setBindings).
      return bindings === undefined || typeof framework.setBindings === 'function' ? framework : framework.child(bindings)
    }
    return root.child(bindings === undefined ? { [idKey]: requestIdOf(store) } : { [idKey]: requestIdOf(store), ...bindings })
  }

  // Explicit methods rather than a Proxy: no bound function per call.
  return {
    get level () { return current().level },
    set level (level) { current().level = level },
    fatal (...args: Parameters<LogFn>) { current().fatal(...args) },
    error (...args: Parameters<LogFn>) { current().error(...args) },
    warn (...args: Parameters<LogFn>) { current().warn(...args) },
    info (...args: Parameters<LogFn>) { current().info(...args) },
    debug (...args: Parameters<LogFn>) { current().debug(...args) },
    trace (...args: Parameters<LogFn>) { current().trace(...args) },
    silent (...args: Parameters<LogFn>) { current().silent(...args) },
    child (bindings, childOptions) { return current().child(bindings, childOptions) },
    bindings () { return current().bindings() },
    isLevelEnabled (level) { return current().isLevelEnabled(level) }
  } as RequestLogger
}

/**
 * Adds fields to every later log line of the current request — through
 * {@link requestLogger}, {@link logMixin}, and in Fastify `request.log`
 * itself (so Fastify's own "request completed" line carries them too).
 * Scopes nested in the request inherit them; fields added in a nested
 * scope stay in it. Throws `ERR_REQUEST_LOCALS_NO_SCOPE` outside a scope.
 * Add each field once: pino's `setBindings` appends, so a field added twice
 * appears twice in `request.log`'s lines (JSON parsers keep the last).
 *
 * @example
 * app.addHook('preHandler', async (request) => {
 *   const user = await authenticate(request)
 *   addLogBindings({ userId: user.id, tenant: user.tenant })
 * })
 */
export function addLogBindings (bindings: Bindings): void {
  const store = storage.getStore()
  if (store === undefined) throw noScopeCallError('addLogBindings(bindings)', 'Call it from a hook, handler or service that runs inside a request (after the plugin/middleware), or wrap background work in runWithLocals(values, fn).')
  if (typeof bindings !== 'object' || bindings === null || Array.isArray(bindings)) {
    throw invalidArgumentError(`addLogBindings(bindings) expects an object of log fields; found ${describe(bindings)}. Pass for example { userId: user.id }.`)
  }
  const added: Bindings = {}
  for (const key of Object.keys(bindings)) {
    if (isReservedKey(key)) throw invalidArgumentError(`addLogBindings(bindings): the field ${JSON.stringify(key)} cannot be added to log lines; rename it.`)
    added[key] = bindings[key]
  }
  // Replaced, never mutated: nested scopes share the object they inherited.
  setLogBindings(store, { ...logBindingsOf(store), ...added })
  const framework = frameworkLogger(store)
  if (framework !== undefined && typeof framework.setBindings === 'function') framework.setBindings(added)
}

/**
 * A pino `mixin` for applications that keep their own module-level pino
 * instances: inside a request it adds the request id, the trace id (when the
 * request continues or started a trace), the chosen locals and the fields of
 * {@link addLogBindings} to every line; outside a scope, nothing.
 *
 * @example
 * import pino from 'pino'
 * import { logMixin } from 'request-locals/pino'
 *
 * export const auditLog = pino({ mixin: logMixin({ locals: ['tenant'] }) })
 */
export function logMixin (options: LogMixinOptions = {}): () => Record<string, unknown> {
  const idKey = requestIdKeyOf(options, 'logMixin(options):')
  const traceKey = options.traceIdKey ?? 'traceId'
  const locals = options.locals ?? []
  if (!Array.isArray(locals) || locals.some((key) => typeof key !== 'string')) {
    throw invalidArgumentError(`logMixin(options): option locals must be an array of local names; found ${describe(locals)}. Pass for example { locals: ['tenant'] }.`)
  }
  return function requestLocalsMixin () {
    const store = storage.getStore()
    // A fresh object: pino's default merge strategy assigns into it.
    if (store === undefined) return {}
    const fields: Record<string, unknown> = { ...logBindingsOf(store) }
    fields[idKey] = requestIdOf(store)
    const trace = traceIdOf(store)
    if (trace !== undefined) fields[traceKey] = trace
    for (const key of locals) {
      if (store[key] !== undefined) fields[key] = store[key]
    }
    return fields
  }
}
