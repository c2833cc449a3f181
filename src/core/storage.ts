import { AsyncLocalStorage } from 'node:async_hooks'
import { kSharedStorage } from './symbols.js'

/** The object every scope holds: string keys only, no prototype. */
export type Store = Record<string, unknown>

/** The storage one set of locals lives in. */
export type LocalsStorage = AsyncLocalStorage<Store>

// Registered, so that `import`, `require` and a second installed copy of this
// package all find the same storage: two storages would make a value written
// through one copy invisible through the other.
type Holder = typeof globalThis & { [kSharedStorage]?: LocalsStorage }

/** The process-wide storage behind `requestLocal`, created on first use. */
export function sharedStorage (): LocalsStorage {
  const holder = globalThis as Holder
  let storage = holder[kSharedStorage]
  if (storage === undefined) {
    storage = new AsyncLocalStorage<Store>()
    Object.defineProperty(holder, kSharedStorage, { value: storage, enumerable: false, writable: false, configurable: false })
  }
  return storage
}
