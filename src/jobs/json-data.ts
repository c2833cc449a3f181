import { describe, notJsonError } from '../core/errors.js'
import { isPlainObject } from '../core/plain-object.js'

// A job queue stores a snapshot as JSON, and JSON quietly changes what it
// cannot represent: a Date becomes a string, a Map `{}`, NaN `null`, and a
// BigInt throws only when the job is added, far from the request that set
// it. Copying through this check fails in the request instead, naming the
// exact place, so what a worker reopens is what the request held.

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

function childPath (path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

// What to store instead, for the kinds of value people most often hold.
function hintFor (value: unknown): string {
  if (value instanceof Date) return 'Store date.toISOString() and parse it where the snapshot is reopened.'
  if (value instanceof Map) return 'Store Object.fromEntries(map) (or an array of entries) and rebuild the Map where the snapshot is reopened.'
  if (value instanceof Set) return 'Store [...set] and rebuild the Set where the snapshot is reopened.'
  if (typeof value === 'bigint') return 'Store String(value).'
  if (typeof value === 'number') return 'Store null or a string instead.'
  if (value === undefined) return 'Store null instead.'
  return 'Store plain data (an id, a plain object) and rebuild the object where the snapshot is reopened.'
}

function found (value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (value === undefined) return 'undefined (JSON turns it into null in an array)'
  return describe(value)
}

/**
 * A deep copy of `value` that is JSON data: plain objects, arrays, strings,
 * finite numbers, booleans and null (and `undefined` as an object's property,
 * which JSON leaves out and which reads the same). Throws
 * `ERR_REQUEST_LOCALS_NOT_CLONEABLE` naming `path` down to the offending
 * value otherwise. `ancestors` holds the objects being copied, to refuse cycles.
 */
export function copyJsonData (value: unknown, path: string, ancestors: object[] = []): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (Number.isFinite(value)) return value
      break
    case 'object':
      if (value === null) return null
      if (ancestors.includes(value)) throw notJsonError(path, 'a cycle (the value contains itself)', 'Store the data without the back reference.')
      if (Array.isArray(value)) return copyArray(value, path, ancestors)
      if (isPlainObject(value)) return copyObject(value as Record<string, unknown>, path, ancestors)
      break
  }
  throw notJsonError(path, found(value), hintFor(value))
}

function copyArray (array: readonly unknown[], path: string, ancestors: object[]): unknown[] {
  ancestors.push(array)
  const copy = new Array<unknown>(array.length)
  for (let i = 0; i < array.length; i++) copy[i] = copyJsonData(array[i], `${path}[${i}]`, ancestors)
  ancestors.pop()
  return copy
}

function copyObject (object: Record<string, unknown>, path: string, ancestors: object[]): Record<string, unknown> {
  ancestors.push(object)
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(object)) {
    const item = object[key]
    const data = item === undefined ? undefined : copyJsonData(item, childPath(path, key), ancestors)
    // An own "__proto__" key (JSON.parse makes them) stays a key: assigning
    // it would set the copy's prototype instead.
    Object.defineProperty(copy, key, { value: data, writable: true, enumerable: true, configurable: true })
  }
  ancestors.pop()
  return copy
}
