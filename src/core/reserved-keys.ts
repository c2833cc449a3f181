/** The field of a snapshot that carries its request's identity, never a local. */
export const SNAPSHOT_KEY = '$requestLocals'

// Keys that must never be stored: `then` would make the locals a thenable
// (so `await` would hang on them), `toJSON` would change how they serialise,
// the next three are the classic prototype-pollution routes, and
// `$requestLocals` is where a snapshot carries its request id (see jobs/snapshot.ts).
// isReservedKey and the list below are the same six names: a test checks it.
const RESERVED_KEYS = ['then', 'toJSON', '__proto__', 'constructor', 'prototype', SNAPSHOT_KEY] as const

/** The reserved key names, as messages list them. */
export const reservedKeyList = RESERVED_KEYS.join(', ')

/** Whether `key` may never be a local. */
export function isReservedKey (key: string): boolean {
  // Literal comparisons: this runs on every read through requestLocal, and
  // comparing interned strings is cheaper than hashing into a Set.
  return key === 'then' || key === 'toJSON' || key === '__proto__' || key === 'constructor' || key === 'prototype' || key === SNAPSHOT_KEY
}
