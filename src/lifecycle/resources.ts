import { describe, disposeFailedError, earlyDisposeFailedError, invalidArgumentError, noScopeCallError, scopeEndedError, unwatchedScopeError } from '../core/errors.js'
import { endScope, endingOf, outcomeSoFar, scopeHasEnded, watchScopeEnd, type ScopeEnding, type ScopeOutcome } from './scope-end.js'
import { requestOf } from '../core/scope-state.js'
import type { LocalsStorage, Store } from '../core/storage.js'

/**
 * How to make and release one kind of per-request resource.
 *
 * @example
 * const options: RequestResourceOptions<PoolClient> = {
 *   name: 'db',
 *   create: () => pool.connect(),
 *   dispose: (client) => client.release()
 * }
 */
export interface RequestResourceOptions<T> {
  /** Names the resource in error messages and logs. */
  name?: string
  /** Makes the resource; runs inside the scope, on its first get(). */
  create: () => T | PromiseLike<T>
  /**
   * Releases the resource once, when its scope ends. Without it, a value with
   * `Symbol.asyncDispose` or `Symbol.dispose` is disposed that way, and any
   * other value is simply dropped.
   */
  dispose?: (value: T, outcome: ScopeOutcome) => void | PromiseLike<void>
}

/**
 * A per-request resource: made on the first `get()` of a scope, shared by
 * the rest of that scope, disposed exactly once when the scope ends.
 *
 * @example
 * const client = await db.get()
 */
export interface RequestResource<T> {
  readonly name: string
  /**
   * This scope's instance, made on the first call. Rejects with
   * `ERR_REQUEST_LOCALS_NO_SCOPE` outside a scope, with
   * `ERR_REQUEST_LOCALS_SCOPE_ENDED` once the scope has ended, and with
   * `create`'s own error when it fails (a later call tries again).
   */
  get: () => Promise<T>
}

/**
 * The functions that define resources on one storage; part of every
 * instance that createRequestLocals() returns.
 *
 * @example
 * const jobs = createRequestLocals<{ jobId: string }>()
 * const scratch = jobs.defineRequestResource({ name: 'scratch', create: () => makeTempDir(), dispose: (dir) => rm(dir) })
 */
export interface ResourceFunctions {
  defineRequestResource: <T>(options: RequestResourceOptions<T>) => RequestResource<T>
  endRequestResources: (error?: unknown) => Promise<void>
}

interface Definition {
  readonly name: string
  readonly create: () => unknown
  readonly dispose: (value: unknown, outcome: ScopeOutcome) => unknown
}

interface Failure {
  readonly name: string
  readonly error: unknown
}

interface Created {
  readonly definition: Definition
  readonly value: unknown
}

// One per scope that has used a resource, created by the first get(): the
// instances of that scope, and their disposal when the scope ends.
class ScopeResources implements ScopeEnding {
  ended = false
  readonly #store: Store
  readonly #storage: LocalsStorage
  // Instances being made or made, by definition: concurrent first get()s
  // share one creation.
  readonly #instances = new Map<Definition, Promise<unknown>>()
  // In the order their creation finished, so a resource made by another's
  // create (its dependency) is disposed after it.
  readonly #created: Created[] = []
  #disposal: Promise<Failure[]> | undefined

  constructor (store: Store, storage: LocalsStorage) {
    this.#store = store
    this.#storage = storage
  }

  get (definition: Definition): Promise<unknown> {
    let instance = this.#instances.get(definition)
    if (instance === undefined) {
      instance = this.#create(definition)
      this.#instances.set(definition, instance)
    }
    return instance
  }

  #create (definition: Definition): Promise<unknown> {
    let creating: Promise<unknown>
    try {
      creating = Promise.resolve(definition.create())
    } catch (error) {
      creating = Promise.reject(error)
    }
    return creating.then(
      (value) => {
        this.#created.push({ definition, value })
        // Made after the scope ended: disposed with the others, never handed out.
        if (this.ended) throw scopeEndedError(definition.name)
        return value
      },
      (error: unknown) => {
        // Nothing was made, so nothing to dispose; a later get() tries again.
        this.#instances.delete(definition)
        throw error
      }
    )
  }

  // Disposes once, whoever asks first; the failures are returned to them.
  #finish (outcome: ScopeOutcome): Promise<Failure[]> {
    if (this.#disposal === undefined) {
      this.ended = true
      // Inside the scope, so dispose (and the logs it writes) sees requestLocal.
      this.#disposal = this.#storage.run(this.#store, () => this.#disposeAll(outcome))
    }
    return this.#disposal
  }

  /** The end of the scope (response closed, runWithLocals settled): failures are logged. */
  end (outcome: ScopeOutcome): Promise<void> {
    const first = this.#disposal === undefined
    return this.#finish(outcome).then((failures) => {
      if (first) for (const { name, error } of failures) reportDisposeFailure(this.#store, name, error)
    })
  }

  /** An early end asked for by the application: failures are its to handle. */
  endNow (outcome: ScopeOutcome): Promise<Failure[]> {
    const first = this.#disposal === undefined
    return this.#finish(outcome).then((failures) => first ? failures : [])
  }

  async #disposeAll (outcome: ScopeOutcome): Promise<Failure[]> {
    // Creations still running finish first: their values are disposed too,
    // and last, as the latest made.
    await Promise.allSettled(this.#instances.values())
    const failures: Failure[] = []
    for (let i = this.#created.length - 1; i >= 0; i--) {
      const { definition, value } = this.#created[i]
      try {
        await definition.dispose(value, outcome)
      } catch (error) {
        failures.push({ name: definition.name, error })
      }
    }
    return failures
  }
}

interface Logger { error: (details: object, message: string) => void }

function loggerOf (request: unknown): Logger | undefined {
  const log = (request as { log?: Partial<Logger> } | undefined)?.log
  return typeof log?.error === 'function' ? log as Logger : undefined
}

// Through the request's logger when it has one (Fastify's request.log,
// pino-http's req.log), so the failure carries the request id; otherwise as
// a process warning, which applications can route with process.on('warning').
function reportDisposeFailure (store: Store, name: string, cause: unknown): void {
  const error = disposeFailedError(name, cause)
  const logger = loggerOf(requestOf(store))
  try {
    if (logger !== undefined) {
      logger.error({ err: error }, error.message)
      return
    }
  } catch {
    // A broken logger must not stop the other disposals; warn instead.
  }
  process.emitWarning(error)
}

async function disposeByProtocol (value: unknown): Promise<void> {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return
  const { [Symbol.asyncDispose]: asyncDispose, [Symbol.dispose]: dispose } = value as Partial<AsyncDisposable & Disposable>
  if (typeof asyncDispose === 'function') {
    await asyncDispose.call(value)
  } else if (typeof dispose === 'function') {
    dispose.call(value)
  }
}

function checkOptions (options: unknown): Definition {
  const where = 'defineRequestResource(options)'
  if (typeof options !== 'object' || options === null) {
    throw invalidArgumentError(`${where} expects an object { name, create, dispose }; found ${describe(options)}. Pass for example { name: 'db', create: () => pool.connect(), dispose: (client) => client.release() }.`)
  }
  const { name, create, dispose } = options as Partial<RequestResourceOptions<unknown>>
  if (typeof create !== 'function') {
    throw invalidArgumentError(`${where}: create must be a function that makes the resource; found ${describe(create)}. Pass for example create: () => pool.connect().`)
  }
  if (dispose !== undefined && typeof dispose !== 'function') {
    throw invalidArgumentError(`${where}: dispose must be a function (value, outcome) => void, or left out for values with Symbol.asyncDispose; found ${describe(dispose)}.`)
  }
  if (name !== undefined && typeof name !== 'string') {
    throw invalidArgumentError(`${where}: name must be a string; found ${describe(name)}.`)
  }
  return { name: name ?? 'unnamed', create, dispose: dispose ?? disposeByProtocol }
}

/** Builds defineRequestResource for one storage (the shared one, or an instance's). */
export function createResourceFunctions (storage: LocalsStorage): ResourceFunctions {
  function defineRequestResource<T> (options: RequestResourceOptions<T>): RequestResource<T> {
    const definition = checkOptions(options)
    const { name } = definition
    function get (): Promise<T> {
      const store = storage.getStore()
      if (store === undefined) return Promise.reject(noScopeCallError(`The request resource "${name}": get()`, 'Call get() from code that runs for a request (a route, a hook, a service they call), or wrap background work in runWithLocals(values, fn), which disposes the resource when fn settles.'))
      if (scopeHasEnded(store)) return Promise.reject(scopeEndedError(name))
      let scope = endingOf(store) as ScopeResources | undefined
      if (scope === undefined) {
        scope = new ScopeResources(store, storage)
        if (!watchScopeEnd(store, scope)) return Promise.reject(unwatchedScopeError(name))
      }
      return scope.get(definition) as Promise<T>
    }
    return { name, get }
  }

  async function endRequestResources (error?: unknown): Promise<void> {
    const store = storage.getStore()
    if (store === undefined) throw noScopeCallError('endRequestResources()', 'Call it from the request\'s own code (a route, a hook such as Fastify\'s onSend), before the response is sent.')
    const outcome = outcomeSoFar(store, error)
    const scope = endingOf(store)
    if (!(scope instanceof ScopeResources)) {
      // Nothing made yet: mark the scope's resources ended all the same, so
      // that a later get() is refused instead of outliving the disposal.
      await endScope(store, outcome)
      return
    }
    const failures = await scope.endNow(outcome)
    if (failures.length > 0) throw earlyDisposeFailedError(failures.map(({ name }) => name), failures.map(({ error }) => error))
  }

  return { defineRequestResource, endRequestResources }
}
