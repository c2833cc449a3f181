import { describe, invalidArgumentError, noScopeCallError, notCloneableError } from './errors.js'
import type { LocalsStorage, Store } from './storage.js'

/**
 * What `snapshotLocals(keys)` returns: a plain object holding a deep copy of
 * the chosen keys that were set. Plain data by construction, so it can be
 * posted to a worker thread, queued as a job, and reopened as a scope with
 * `runWithLocals(snapshot, fn)`.
 *
 * @example
 * const snapshot: LocalsSnapshot<RequestLocals, 'user' | 'tenant'> = snapshotLocals(['user', 'tenant'])
 */
export type LocalsSnapshot<T extends object, K extends keyof T> = { [P in K]?: T[P] }

export function createSnapshotLocals<T extends object> (storage: LocalsStorage): <K extends keyof T & string>(keys: readonly K[]) => LocalsSnapshot<T, K> {
  return function snapshotLocals<K extends keyof T & string> (keys: readonly K[]): LocalsSnapshot<T, K> {
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) {
      throw invalidArgumentError(`snapshotLocals(keys) expects an array of key names; found ${describe(keys)}. Pass for example ['user', 'tenant'].`)
    }
    const store = storage.getStore()
    if (store === undefined) throw noScopeCallError('snapshotLocals(keys)', 'Call it from the request (or job) whose locals it should capture.')
    // An ordinary object, not a null-prototype store: it is meant to leave
    // this process's scopes (postMessage, JSON), where plain objects travel.
    const snapshot: Store = {}
    for (const key of keys) {
      if (!(key in store)) continue
      try {
        snapshot[key] = structuredClone(store[key])
      } catch (cause) {
        throw notCloneableError(key, store[key], cause)
      }
    }
    return snapshot as LocalsSnapshot<T, K>
  }
}
