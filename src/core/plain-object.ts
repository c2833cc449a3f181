import { storePrototype } from './store-prototype.js'

/**
 * Whether `value` is plain data's object form: made by `{}` or
 * `Object.create(null)` (or a store, whose prototype is empty), not a class
 * instance, Map, Date, array or function. Options, defaults and snapshots
 * all draw the line here.
 */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === null || proto === Object.prototype || proto === storePrototype
}
