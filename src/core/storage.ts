import { AsyncLocalStorage } from 'node:async_hooks'
import { registered } from '../protocol/registered.js'
import { kSharedStorage } from '../protocol/symbols.js'

/** The object every scope holds: string keys only, no prototype. */
export type Store = Record<string, unknown>

/** The storage one set of locals lives in. */
export type LocalsStorage = AsyncLocalStorage<Store>

// Registered, so that `import`, `require` and a second installed copy of this
// package all find the same storage: two storages would make a value written
// through one copy invisible through the other.
/** The process-wide storage behind `requestLocal`, created on first use. */
export function sharedStorage (): LocalsStorage {
  return registered(kSharedStorage, () => new AsyncLocalStorage<Store>())
}
