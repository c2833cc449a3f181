import { registered } from '../protocol/registered.js'
import { kStorePrototype } from '../protocol/symbols.js'

/**
 * The prototype of every store: empty, with no prototype of its own.
 * Registered, so that a store made by another installed copy of the package
 * is recognised as a store (and as plain data) by this one.
 */
// Not frozen: a frozen prototype makes V8 check the chain on every new key
// written through requestLocal (twice the cost of a write). Nothing reaches
// it but Object.getPrototypeOf(store): stores have no `constructor`, and
// `__proto__` is an ordinary key on them (its accessor is on Object.prototype).
export const storePrototype: object = registered(kStorePrototype, () => Object.create(null) as object)
