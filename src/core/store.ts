import { describe, invalidArgumentError, optionsError, reservedKeyError } from './errors.js'
import { isPlainObject } from './plain-object.js'
import { isReservedKey, reservedKeyList, SNAPSHOT_KEY } from './reserved-keys.js'
import type { Store } from './storage.js'

/** A fresh store with no prototype, so no key can resolve to Object.prototype. */
export function emptyStore (): Store {
  return Object.create(null) as Store
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
    const where = `The ${option} function's return value`
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
      throw optionsError(`${option} has the reserved key ${JSON.stringify(key)}; rename it (reserved: ${reservedKeyList}).`)
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

// Clones key by key so that a value structuredClone cannot copy (a function,
// a class instance with private state, a socket) is named in the error.
function cloneDefaults (defaults: Record<string, unknown>, option: string): Store {
  const template = emptyStore()
  for (const key of Object.keys(defaults)) {
    try {
      template[key] = structuredClone(defaults[key])
    } catch (cause) {
      throw optionsError(
        `${option}.${key} cannot be copied per request: structuredClone failed on ${describe(defaults[key])} ` +
        `(${(cause as Error).message}). Defaults given as an object must be plain data so that every request gets ` +
        'its own copy; pass a function (request) => values to build values such as class instances per request.',
        cause
      )
    }
  }
  return template
}

function emptyStoreFactory (): Store {
  return emptyStore()
}
