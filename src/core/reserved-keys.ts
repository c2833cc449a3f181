/** The field of a snapshot that carries its request's identity, never a local. */
export const SNAPSHOT_KEY = '$requestLocals'

// Keys that must never be stored: `then` would make the locals a thenable
// (so `await` would hang on them), `toJSON` would change how they serialise,
// the next three are the classic prototype-pollution routes, and
// `$requestLocals` is where a snapshot carries its request id (see jobs/snapshot.ts).
const RESERVED_KEYS = ['then', 'toJSON', '__proto__', 'constructor', 'prototype', SNAPSHOT_KEY] as const

/** The reserved key names, as messages list them. */
export const reservedKeyList = RESERVED_KEYS.join(', ')

/** Whether `key` may never be a local. */
export function isReservedKey (key: string): boolean {
  // A switch on interned strings: this runs on every read through
  // requestLocal, and it is cheaper than hashing into a Set.
  switch (key) {
    case RESERVED_KEYS[0]: case RESERVED_KEYS[1]: case RESERVED_KEYS[2]:
    case RESERVED_KEYS[3]: case RESERVED_KEYS[4]: case RESERVED_KEYS[5]:
      return true
    default:
      return false
  }
}
