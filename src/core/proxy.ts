import { inspect } from 'node:util'
import { noScopeError, reservedKeyError } from './errors.js'
import { isReservedKey } from './reserved-keys.js'
import { copyOwnValues } from './store.js'
import type { LocalsStorage, Store } from './storage.js'

/**
 * The type of `requestLocal`: the keys of `T`, where an optional key also
 * accepts an `undefined` write. Reading an unset key gives `undefined`
 * anyway, so `requestLocal.user = await authenticate(req)` (a
 * `User | undefined`) type-checks under `exactOptionalPropertyTypes` too;
 * a required key still refuses `undefined`.
 *
 * @example
 * declare module 'request-locals' {
 *   interface RequestLocals { user?: { id: string } }
 * }
 * requestLocal.user = undefined   // allowed: user is optional
 */
export type LocalsProxy<T extends object> = {
  [K in keyof T]: {} extends Pick<T, K> ? T[K] | undefined : T[K]
}

/**
 * Builds the object behind `requestLocal`: every property access is forwarded
 * to the store of the scope current at that moment.
 *
 * Reads and writes of ordinary keys are strict: outside a scope they throw,
 * because a silent `undefined` (or a write into a shared fallback) is how
 * peers leak or lose data. Everything that generic code uses to *probe* an
 * object (`then`, symbols, `toJSON`, `constructor`, `in`, `Object.keys`,
 * `util.inspect`) answers harmlessly instead, inside or outside a scope.
 */
export function createLocalsProxy<T extends object> (storage: LocalsStorage): T {
  function toJSON (): Record<string, unknown> {
    const store = storage.getStore()
    // Reserved keys are left out: an own `__proto__` that a client put in
    // through Object.assign(res.locals, body) would become the copy's prototype.
    return store === undefined ? {} : copyOwnValues({}, store)
  }

  // util.inspect looks at the proxy's target without running traps, so the
  // target itself carries the custom inspection that shows the current store.
  const target = Object.create(null) as Record<PropertyKey, unknown>
  target[inspect.custom] = function inspectLocals (depth: number, options: object): string {
    const store = storage.getStore()
    if (store === undefined) return '[requestLocal: outside a request scope]'
    return `requestLocal ${inspect(copyOwnValues({}, store), { ...options, depth })}`
  }

  const handler: ProxyHandler<Record<PropertyKey, unknown>> = {
    get (_target, key) {
      if (typeof key === 'string' && !isReservedKey(key)) {
        const store = storage.getStore()
        if (store === undefined) throw noScopeError(key, 'read')
        return store[key]
      }
      // Probes: never stored, never throwing. `then` stays undefined so that
      // `await requestLocal` resolves instead of hanging.
      return key === 'toJSON' ? toJSON : undefined
    },

    set (_target, key, value) {
      writableStore(key, 'written')[key as string] = value
      return true
    },

    defineProperty (_target, key, descriptor) {
      // Object.defineProperty(requestLocal, …) is a write like any other;
      // accessors are refused because the store holds values, not behaviour.
      if (descriptor.get !== undefined || descriptor.set !== undefined) throw reservedKeyError(key, 'Object.defineProperty(requestLocal) with a getter or setter')
      writableStore(key, 'written')[key as string] = descriptor.value
      return true
    },

    deleteProperty (_target, key) {
      if (typeof key === 'string' && isReservedKey(key)) return true
      delete writableStore(key, 'deleted')[key as string]
      return true
    },

    has (_target, key) {
      if (typeof key !== 'string') return false
      const store = storage.getStore()
      return store !== undefined && key in store && !isReservedKey(key)
    },

    ownKeys () {
      const store = storage.getStore()
      return store === undefined ? [] : Object.keys(store).filter((key) => !isReservedKey(key))
    },

    getOwnPropertyDescriptor (_target, key) {
      if (typeof key !== 'string') return undefined
      const store = storage.getStore()
      if (store === undefined || !(key in store) || isReservedKey(key)) return undefined
      return { value: store[key], writable: true, enumerable: true, configurable: true }
    },

    getPrototypeOf () {
      return null
    },

    setPrototypeOf () {
      throw reservedKeyError('__proto__', 'Object.setPrototypeOf(requestLocal)')
    },

    preventExtensions () {
      // Freezing the proxy would freeze nothing real (each scope has its own
      // store) and would break every later write, so it is refused.
      return false
    }
  }

  function writableStore (key: string | symbol, access: 'written' | 'deleted'): Store {
    if (typeof key === 'symbol' || isReservedKey(key)) throw reservedKeyError(key, `requestLocal[${typeof key === 'symbol' ? key.toString() : JSON.stringify(key)}]`)
    const store = storage.getStore()
    if (store === undefined) throw noScopeError(key, access)
    return store
  }

  return new Proxy(target, handler) as unknown as T
}
