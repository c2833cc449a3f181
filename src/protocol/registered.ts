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
