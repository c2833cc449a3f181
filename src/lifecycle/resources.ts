import { checkOptionsObject } from '../core/options.js'
import { describe, disposeFailedError, disposeTimeoutError, earlyDisposeFailedError, invalidArgumentError, noScopeCallError, optionsError, scopeEndedError, unwatchedScopeError } from '../core/errors.js'
import type { RequestLocalsError } from '../core/errors.js'
import { endScope, endingOf, outcomeSoFar, scopeHasEnded, watchScopeEnd, type DisposeFailure, type ResourceDefinition, type ScopeEnding, type ScopeOutcome } from './scope-end.js'
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
  /**
   * How long, in milliseconds, the end of a scope waits for this resource:
   * for its `create` when it is still running, then for its `dispose`.
   * Past it the resource is reported (`ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT`,
   * through the request's logger or a process warning) and the scope's other
   * resources are disposed without it; a creation that settles later is
   * disposed then. Default 10000; `Infinity` waits for ever.
   */
  disposeTimeout?: number
}

/** How long the end of a scope waits for one resource's create or dispose, unless `disposeTimeout` says otherwise. */
const DEFAULT_DISPOSE_TIMEOUT = 10_000

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

type Definition = ResourceDefinition
type Failure = DisposeFailure

interface Created {
  readonly definition: Definition
  readonly value: unknown
}

// One per scope that has used a resource, created by the first get(): the
// instances of that scope, and their disposal when the scope ends.
class ScopeResources implements ScopeEnding {
  readonly protocol = 1
  ended = false
  readonly #store: Store
  readonly #storage: LocalsStorage
  // Instances being made or made, by definition: concurrent first get()s
  // share one creation.
  readonly #instances = new Map<Definition, Promise<unknown>>()
  // Creations still running, so the end of the scope knows what it waits for.
  readonly #creating = new Set<Definition>()
  // In the order their creation finished, so a resource made by another's
  // create (its dependency) is disposed after it.
  readonly #created: Created[] = []
  #disposal: Promise<Failure[]> | undefined
  // Set once the disposal stopped waiting for creations: a value made later
  // is disposed on its own as soon as it arrives.
  #lateOnes: ScopeOutcome | undefined

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
    this.#creating.add(definition)
    return creating.then(
      (value) => {
        this.#creating.delete(definition)
        if (this.#lateOnes !== undefined) {
          // The disposal gave up waiting for this creation: release it now.
          void this.#disposeLate(definition, value, this.#lateOnes)
        } else {
          this.#created.push({ definition, value })
        }
        // Made after the scope ended: disposed with the others, never handed out.
        if (this.ended) throw scopeEndedError(definition.name)
        return value
      },
      (error: unknown) => {
        this.#creating.delete(definition)
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
      if (first) for (const failure of failures) reportDisposeFailure(this.#store, failure)
    })
  }

  /** An early end asked for by the application: failures are its to handle. */
  endNow (outcome: ScopeOutcome): Promise<Failure[]> {
    const first = this.#disposal === undefined
    return this.#finish(outcome).then((failures) => first ? failures : [])
  }

  async #disposeAll (outcome: ScopeOutcome): Promise<Failure[]> {
    const failures: Failure[] = []
    // Creations still running finish first, each within its resource's
    // bound: their values are disposed too, and last, as the latest made. One
    // that never settles must not keep the others leased for ever.
    if (this.#creating.size > 0) {
      const waiting = [...this.#creating]
      const settled = Promise.allSettled(waiting.map((definition) => this.#instances.get(definition)))
      const bound = Math.max(...waiting.map(boundOf))
      const timedOut = await settleWithin(settled, bound)
      if (timedOut) {
        for (const definition of this.#creating) failures.push({ name: definition.name, error: disposeTimeoutError(definition.name, 'create', bound), timedOut: true })
      }
    }
    this.#lateOnes = outcome
    for (let i = this.#created.length - 1; i >= 0; i--) {
      const { definition, value } = this.#created[i]
      const failure = await disposeWithin(definition, value, outcome)
      if (failure !== undefined) failures.push(failure)
    }
    return failures
  }

  // A value whose creation outlived the wait: its failure can only be logged.
  async #disposeLate (definition: Definition, value: unknown, outcome: ScopeOutcome): Promise<void> {
    const failure = await this.#storage.run(this.#store, disposeWithin, definition, value, outcome)
    if (failure !== undefined) reportDisposeFailure(this.#store, failure)
  }
}

// Resolves true when `work` is still pending after `ms` (it is left to
// settle on its own), false when it settled in time. The timer is cleared as
// soon as the work settles, so a fast disposal leaves nothing behind.
function settleWithin (work: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms === Infinity) return work.then(() => false, () => false)
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms, true)
    const settle = (): void => {
      clearTimeout(timer)
      resolve(false)
    }
    work.then(settle, settle)
  })
}

// A definition passed in by an installed copy older than 1.0 (through the
// ending protocol) has no disposeTimeout.
function boundOf (definition: Definition): number {
  return definition.disposeTimeout ?? DEFAULT_DISPOSE_TIMEOUT
}

// Runs one dispose within its bound; resolves with the failure when it threw,
// rejected (with any value at all) or did not settle in time.
async function disposeWithin (definition: Definition, value: unknown, outcome: ScopeOutcome): Promise<Failure | undefined> {
  const { name } = definition
  const disposeTimeout = boundOf(definition)
  let disposing: unknown
  try {
    disposing = definition.dispose(value, outcome)
  } catch (error) {
    return { name, error }
  }
  // A synchronous dispose needs no timer.
  if (!isThenable(disposing)) return undefined
  let failure: Failure | undefined
  const settled = Promise.resolve(disposing).then(undefined, (error: unknown) => { failure = { name, error } })
  if (await settleWithin(settled, disposeTimeout)) return { name, error: disposeTimeoutError(name, 'dispose', disposeTimeout), timedOut: true }
  return failure
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

interface Logger { error: (details: object, message: string) => void }

function loggerOf (request: unknown): Logger | undefined {
  const log = (request as { log?: Partial<Logger> } | undefined)?.log
  return typeof log?.error === 'function' ? log as Logger : undefined
}

// Through the request's logger when it has one (Fastify's request.log,
// pino-http's req.log), so the failure carries the request id; otherwise as
// a process warning, which applications can route with process.on('warning').
function reportDisposeFailure (store: Store, { name, error: cause, timedOut }: Failure): void {
  // A timeout is reported as itself; anything else thrown or rejected (of
  // any type at all) is wrapped, and never converted to a string unguarded.
  const error = timedOut === true ? cause as RequestLocalsError : disposeFailedError(name, cause)
  try {
    const logger = loggerOf(requestOf(store))
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
  const { name, create, dispose } = checkOptionsObject<RequestResourceOptions<unknown>>(options, {
    where,
    known: ['name', 'create', 'dispose', 'disposeTimeout'],
    example: "{ name: 'db', create: () => pool.connect(), dispose: (client) => client.release() }",
    code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT'
  })
  if (typeof create !== 'function') {
    throw invalidArgumentError(`${where}: create must be a function that makes the resource; found ${describe(create)}. Pass for example create: () => pool.connect().`)
  }
  if (dispose !== undefined && typeof dispose !== 'function') {
    throw invalidArgumentError(`${where}: dispose must be a function (value, outcome) => void, or left out for values with Symbol.asyncDispose; found ${describe(dispose)}.`)
  }
  if (name !== undefined && typeof name !== 'string') {
    throw invalidArgumentError(`${where}: name must be a string; found ${describe(name)}.`)
  }
  const disposeTimeout = checkDisposeTimeout((options as Partial<RequestResourceOptions<unknown>>).disposeTimeout, where)
  return { name: name ?? 'unnamed', create, dispose: dispose ?? disposeByProtocol, disposeTimeout }
}

// setTimeout fires at once for a delay above 2^31 - 1 ms (about 24.8 days).
const MAX_TIMER = 2 ** 31 - 1

function checkDisposeTimeout (value: unknown, where: string): number {
  if (value === undefined) return DEFAULT_DISPOSE_TIMEOUT
  if (value === Infinity || (typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= MAX_TIMER)) return value
  throw optionsError(`${where}: disposeTimeout must be a whole number of milliseconds from 1 to ${MAX_TIMER}, or Infinity to wait for ever; found ${typeof value === 'number' ? String(value) : describe(value)}. Pass for example disposeTimeout: 5000.`)
}

/**
 * Ends the resources of `store` now, before its response, with `outcome`;
 * rejects with ERR_REQUEST_LOCALS_DISPOSE_FAILED when one failed to end
 * (for a transaction: the commit did not happen). Ending twice does nothing more.
 */
export async function endResourcesNow (store: Store, outcome: ScopeOutcome): Promise<void> {
  // Through the protocol, not `instanceof`: the scope's resources may have
  // been made by another installed copy, whose failures must still reach
  // this caller (a failed COMMIT must not be reported as a success).
  const scope = endingOf(store)
  if (scope === undefined) {
    // Nothing made yet: mark the scope's resources ended all the same, so
    // that a later get() is refused instead of outliving the disposal.
    await endScope(store, outcome)
    return
  }
  const failures = await scope.endNow(outcome)
  if (failures.length > 0) throw earlyDisposeFailedError(failures.map(({ name }) => name), failures.map(({ error }) => error))
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
      // Possibly registered by another installed copy: used through the
      // ending protocol only.
      let scope = endingOf(store)
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
    await endResourcesNow(store, outcomeSoFar(store, error))
  }

  return { defineRequestResource, endRequestResources }
}
