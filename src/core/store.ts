import { describe, invalidArgumentError, optionsError, reservedKeyError } from './errors.js'
import { isPlainObject } from './plain-object.js'
import { isReservedKey, reservedKeyList, SNAPSHOT_KEY } from './reserved-keys.js'
import { storePrototype } from './store-prototype.js'
import type { Store } from './storage.js'

// Made by a constructor, not Object.create(null): V8 keeps a null-prototype
// object in dictionary mode, where three writes and three reads cost about
// four times as much as on an object with a hidden class (measured in
// bench/RESULTS.md). The prototype is one empty object with no
// prototype itself, so no key resolves to Object.prototype all the same.
const LocalsStore = function LocalsStore () {} as unknown as new () => Store
LocalsStore.prototype = storePrototype

/** A fresh store: no key of it resolves to Object.prototype. */
export function emptyStore (): Store {
  return new LocalsStore()
}

/**
 * Copies the values (own enumerable string keys) of `from` onto `store`.
 * Symbol keys are deliberately left behind: they hold a scope's internal
 * state, which belongs to that scope alone.
 */
export function copyStore (store: Store, from: object): Store {
  for (const key of Object.keys(from)) store[key] = (from as Store)[key]
  return store
}

/**
 * Copies the own enumerable string keys of `from`, an object the library did
 * not make (an earlier `res.locals`, a store a client may have written to
 * through `Object.assign(res.locals, body)`), leaving out the reserved keys:
 * an own `__proto__` copied by assignment would set the copy's prototype.
 */
export function copyOwnValues<T extends object> (store: T, from: object): T {
  for (const key of Object.keys(from)) {
    if (!isReservedKey(key)) (store as Store)[key] = (from as Store)[key]
  }
  return store
}

/**
 * Copies caller-supplied values onto `store`, refusing reserved keys. `where`
 * names the call in messages, so the user knows which values were wrong.
 * With `skipSnapshotKey`, a snapshot's `$requestLocals` is passed over (the
 * caller reads it) instead of refused.
 */
export function assignValues (store: Store, values: unknown, where: string, skipSnapshotKey = false): Store {
  if (!isPlainObject(values)) {
    throw invalidArgumentError(
      `${where} must be a plain object of locals; found ${describe(values)}. ` +
      'Pass an object literal such as { tenant: "acme" }.'
    )
  }
  // Own keys only (Object.keys, not for-in): a key inherited from a polluted
  // Object.prototype must never become a local, while an own "__proto__"
  // (as JSON.parse makes) must be seen, so that it is refused.
  for (const key of Object.keys(values)) {
    if (isReservedKey(key)) {
      if (skipSnapshotKey && key === SNAPSHOT_KEY) continue
      throw reservedKeyError(key, where)
    }
    store[key] = values[key]
  }
  return store
}

/** Makes the store of one request from that request. */
export type StoreFactory<Request> = (request: Request) => Store

function isFlat (values: Record<string, unknown>): boolean {
  for (const key of Object.keys(values)) {
    const value = values[key]
    if (typeof value === 'object' && value !== null) return false
  }
  return true
}

/**
 * Validates the `defaults` option once, at registration, and returns the
 * function that makes each request's store. Objects are copied per request
 * (deeply when they hold objects) so that no request can change another's
 * defaults; a factory is called per request.
 */
export function compileDefaults<Request> (defaults: unknown, option: string): StoreFactory<Request> {
  if (defaults === undefined) return emptyStoreFactory
  if (typeof defaults === 'function') {
    const factory = defaults as (request: Request) => unknown
    const where = `the value returned by ${option}(request)`
    return function storeFromFactory (request) {
      return assignValues(emptyStore(), factory(request), where)
    }
  }
  if (!isPlainObject(defaults)) {
    throw optionsError(
      `${option} must be a plain object or a function (request) => values; found ${describe(defaults)}. ` +
      'Pass for example { tenant: "public" } or (request) => ({ tenant: request.headers["x-tenant"] }).'
    )
  }
  for (const key of Object.keys(defaults)) {
    if (isReservedKey(key)) {
      throw optionsError(`${option} has the reserved key ${JSON.stringify(key)}, which cannot be a local. Rename it (reserved: ${reservedKeyList}).`)
    }
  }
  const template = cloneDefaults(defaults, option)
  if (isFlat(template)) {
    // Primitives cannot be shared by reference, so a shallow copy is as safe
    // as a deep one and an order of magnitude cheaper per request.
    return function storeFromFlatDefaults () {
      return copyStore(emptyStore(), template)
    }
  }
  return function storeFromDefaults () {
    return copyStore(emptyStore(), structuredClone(template))
  }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

function childPath (path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

// Object defaults are copied per request with structuredClone, which turns
// a class instance into a plain object (its methods vanish), keeps a Date or
// Map as a copy that a later change to the original no longer reaches, and
// fails on a function. Only plain data copies faithfully, so anything else
// is refused here, at registration, naming its path.
function checkPlainData (value: unknown, path: string, ancestors: object[]): void {
  if (typeof value === 'function') throw notPlainDefault(path, 'a function')
  if (typeof value !== 'object' || value === null) return
  if (!Array.isArray(value) && !isPlainObject(value)) throw notPlainDefault(path, describe(value))
  if (ancestors.includes(value)) throw notPlainDefault(path, 'a reference to an enclosing object (a cycle)')
  ancestors.push(value)
  for (const key of Object.keys(value)) checkPlainData((value as Record<string, unknown>)[key], childPath(path, key), ancestors)
  ancestors.pop()
}

function notPlainDefault (path: string, found: string): Error {
  return optionsError(
    `${path} cannot be copied per request: expected plain data (strings, numbers, booleans, null, arrays and plain objects); found ${found}. ` +
    'Pass defaults as a function (request) => ({ … }) instead: it builds values such as class instances, Maps and Dates for each request.'
  )
}

// Clones key by key so that a value structuredClone cannot copy (a symbol,
// a bigint inside a typed array) is named in the error.
function cloneDefaults (defaults: Record<string, unknown>, option: string): Store {
  const template = emptyStore()
  for (const key of Object.keys(defaults)) {
    checkPlainData(defaults[key], childPath(option, key), [])
    try {
      template[key] = structuredClone(defaults[key])
    } catch (cause) {
      throw optionsError(
        `${childPath(option, key)} cannot be copied per request: structuredClone failed on ${describe(defaults[key])} ` +
        `(${(cause as Error).message}). Defaults given as an object must be plain data so that every request gets ` +
        'its own copy; pass a function (request) => values to build such values per request.',
        cause
      )
    }
  }
  return template
}

function emptyStoreFactory (): Store {
  return emptyStore()
}
