import { AsyncLocalStorage } from 'node:async_hooks'
import { kSharedStorage } from './symbols.js'

/** The object every scope holds: string keys only, no prototype. */
export type Store = Record<string, unknown>

/** The storage one set of locals lives in. */
export type LocalsStorage = AsyncLocalStorage<Store>

/**
 * The process-wide value registered under `key` on globalThis, made by `make`
 * on first use by whichever installed copy of the package asks first. Every
 * copy, of any version, must agree on the shape kept under a key (see
 * symbols.ts).
 */
export function registered<T> (key: symbol, make: () => T): T {
  const holder = globalThis as typeof globalThis & Record<symbol, T | undefined>
  let value = holder[key]
  if (value === undefined) {
    value = make()
    Object.defineProperty(holder, key, { value, enumerable: false, writable: false, configurable: false })
  }
  return value
}

// Registered, so that `import`, `require` and a second installed copy of this
// package all find the same storage: two storages would make a value written
// through one copy invisible through the other.
/** The process-wide storage behind `requestLocal`, created on first use. */
export function sharedStorage (): LocalsStorage {
  return registered(kSharedStorage, () => new AsyncLocalStorage<Store>())
}
