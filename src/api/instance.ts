import { AsyncLocalStorage } from 'node:async_hooks'
import { createLocalsProxy, type LocalsProxy } from '../core/proxy.js'
import { createResourceFunctions, type ResourceFunctions } from '../lifecycle/resources.js'
import { createScopeFunctions, type ScopeFunctions } from './scope.js'
import { createSnapshotLocals, type LocalsSnapshot, type SnapshotOptions } from '../jobs/snapshot.js'
import type { LocalsStorage, Store } from '../core/storage.js'

// One set of locals is put together here, from the layers below: core's
// proxy, the scope functions, jobs' snapshots and lifecycle's resources. It
// sits above them all so that none of them, core least of all, needs another.

/**
 * One complete set of request locals: the proxy and the scope functions,
 * all bound to the same storage and typed by `T`.
 *
 * @example
 * interface JobLocals { jobId: string }
 * const jobs: RequestLocalsInstance<JobLocals> = createRequestLocals<JobLocals>()
 * jobs.runWithLocals({ jobId: 'j1' }, () => jobs.requestLocal.jobId)
 */
export interface RequestLocalsInstance<T extends object> extends ScopeFunctions<T>, ResourceFunctions {
  /** Reads and writes the current scope's values; see `requestLocal`. */
  readonly requestLocal: LocalsProxy<T>
  /** Copies chosen keys into plain data for a worker or a job; see `snapshotLocals`. */
  readonly snapshotLocals: <K extends keyof T & string>(keys: readonly K[], options?: SnapshotOptions) => LocalsSnapshot<T, K>
}

export function buildInstance<T extends object> (storage: LocalsStorage): RequestLocalsInstance<T> {
  return {
    requestLocal: createLocalsProxy<T>(storage),
    ...createScopeFunctions<T>(storage),
    snapshotLocals: createSnapshotLocals<T>(storage),
    ...createResourceFunctions(storage)
  }
}

/**
 * Creates an isolated set of locals with its own storage, typed by `T`:
 * for a library that must not share the application's `requestLocal`.
 * Its scopes are opened only by its own `runWithLocals`.
 *
 * @example
 * interface AuditLocals { actor?: string }
 * export const audit = createRequestLocals<AuditLocals>()
 *
 * audit.runWithLocals({ actor: 'cron' }, () => {
 *   audit.requestLocal.actor // 'cron'
 * })
 */
export function createRequestLocals<T extends object> (): RequestLocalsInstance<T> {
  return buildInstance<T>(new AsyncLocalStorage<Store>())
}
