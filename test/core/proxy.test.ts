import t, { type Test } from 'tap'
import { inspect } from 'node:util'
import { requestLocal, runWithLocals, RequestLocalsError } from '../../src/index.js'
import '../helpers/locals.js'

// Untyped access, for keys and values the types rightly forbid.
const read = (key: PropertyKey): unknown => Reflect.get(requestLocal, key)
const write = (key: PropertyKey, value: unknown): boolean => Reflect.set(requestLocal, key, value)

t.test('reads and writes go to the current scope', async (t) => {
  await runWithLocals({ tenant: 'acme' }, async () => {
    t.equal(requestLocal.tenant, 'acme')
    t.equal(requestLocal.user, undefined, 'an unset key reads undefined')
    requestLocal.user = { id: 'u1' }
    await Promise.resolve()
    t.same(requestLocal.user, { id: 'u1' }, 'a write is seen after await')
    delete requestLocal.user
    t.equal(requestLocal.user, undefined, 'delete removes the key')
  })
})

t.test('outside a scope, reads and writes throw ERR_REQUEST_LOCALS_NO_SCOPE naming the key and the fix', async (t) => {
  const expected = (access: string) => ({
    name: 'RequestLocalsError',
    code: 'ERR_REQUEST_LOCALS_NO_SCOPE',
    message: new RegExp(`^requestLocal\\.user ${access} outside a request scope\\. .*Register the plugin/middleware before .*runWithLocals\\(values, fn\\)`)
  })
  t.throws(() => requestLocal.user, expected('was read'))
  t.throws(() => { requestLocal.user = { id: 'x' } }, expected('was written'))
  t.throws(() => { delete requestLocal.user }, expected('was deleted'))
  t.throws(() => Object.defineProperty(requestLocal, 'user', { value: { id: 'x' } }), expected('was written'))
  try {
    void requestLocal.tenant
  } catch (err) {
    t.ok(err instanceof RequestLocalsError, 'the error is a RequestLocalsError')
    t.ok(err instanceof Error, 'and an Error')
  }
})

function probes (t: Test, expectedKeys: string[]): void {
  t.equal(read('then'), undefined, 'then is undefined')
  t.equal(read(Symbol.iterator), undefined, 'a symbol reads undefined')
  t.equal(read(Symbol.toPrimitive), undefined)
  t.equal(read('constructor'), undefined, 'constructor reads undefined')
  t.equal(read('__proto__'), undefined, '__proto__ reads undefined')
  t.equal(read('prototype'), undefined)
  t.equal(typeof read('toJSON'), 'function', 'toJSON is the serialiser')
  t.same(Object.keys(requestLocal), expectedKeys, 'Object.keys')
  t.same(JSON.parse(JSON.stringify(requestLocal)), Object.fromEntries(expectedKeys.map((k) => [k, (requestLocal as Record<string, unknown>)[k]])), 'JSON.stringify')
  t.same({ ...requestLocal }, JSON.parse(JSON.stringify(requestLocal)), 'spread')
  t.equal('missing' in requestLocal, false, 'in for a missing key')
  t.equal(Symbol.iterator in requestLocal, false, 'in for a symbol')
  t.equal(Object.getPrototypeOf(requestLocal), null, 'no prototype')
  t.equal(Object.getOwnPropertyDescriptor(requestLocal, Symbol.iterator), undefined)
  t.equal(Object.getOwnPropertyDescriptor(requestLocal, 'missing'), undefined)
  t.type(inspect(requestLocal), 'string', 'util.inspect')
  t.equal(Reflect.deleteProperty(requestLocal, 'then'), true, 'deleting a reserved key is a no-op')
}

t.test('probes never throw outside a scope', async (t) => {
  probes(t, [])
  t.equal('user' in requestLocal, false)
  t.equal(inspect(requestLocal), '[requestLocal: outside a request scope]')
  t.equal(JSON.stringify({ locals: requestLocal }), '{"locals":{}}')
  t.equal(await requestLocal, requestLocal, 'await requestLocal resolves to the proxy')
})

t.test('probes never throw inside a scope, and show the current values', async (t) => {
  await runWithLocals({ tenant: 'acme', user: { id: 'u1' } }, async () => {
    probes(t, ['tenant', 'user'])
    t.equal('user' in requestLocal, true)
    t.same(Object.getOwnPropertyDescriptor(requestLocal, 'tenant'), { value: 'acme', writable: true, enumerable: true, configurable: true })
    t.equal(inspect(requestLocal), "requestLocal { tenant: 'acme', user: { id: 'u1' } }")
    t.equal(inspect(requestLocal, { depth: 0 }), "requestLocal { tenant: 'acme', user: [Object] }")
    t.equal(await requestLocal, requestLocal, 'await requestLocal resolves')
  })
})

t.test('reserved keys and symbols are refused with ERR_REQUEST_LOCALS_RESERVED_KEY, inside and outside a scope', async (t) => {
  const reserved = { name: 'RequestLocalsError', code: 'ERR_REQUEST_LOCALS_RESERVED_KEY' }
  const attempt = (): void => {
    for (const key of ['then', 'toJSON', '__proto__', 'constructor', 'prototype']) {
      t.throws(() => { write(key, () => {}) }, { ...reserved, message: new RegExp(`"${key}" cannot be stored.*Rename the key`) }, key)
    }
    t.throws(() => { write(Symbol('s'), 1) }, { ...reserved, message: /Symbol\(s\)/ })
    t.throws(() => Object.defineProperty(requestLocal, 'tenant', { get: () => 'x' }), reserved, 'accessors')
    t.throws(() => Object.setPrototypeOf(requestLocal, { polluted: true }), reserved, 'setPrototypeOf')
  }
  attempt()
  runWithLocals({}, attempt)
})

t.test('no write through the proxy reaches Object.prototype', async (t) => {
  runWithLocals({}, () => {
    t.throws(() => Object.assign(requestLocal, JSON.parse('{"__proto__": {"polluted": true}}')), { code: 'ERR_REQUEST_LOCALS_RESERVED_KEY' })
    t.throws(() => { write('constructor', { prototype: { polluted: true } }) }, { code: 'ERR_REQUEST_LOCALS_RESERVED_KEY' })
    write('hasOwnProperty', 'shadow')
    t.equal(read('hasOwnProperty'), 'shadow', 'an Object.prototype name is an ordinary key in the store')
  })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.equal(Object.prototype.hasOwnProperty.call({ a: 1 }, 'a'), true)
})

t.test('the proxy cannot be frozen', async (t) => {
  t.throws(() => Object.freeze(requestLocal), TypeError)
  t.throws(() => Object.preventExtensions(requestLocal), TypeError)
  t.equal(Object.isExtensible(requestLocal), true)
})

t.test('Object.defineProperty with a value is a write', async (t) => {
  runWithLocals({}, () => {
    Object.defineProperty(requestLocal, 'tenant', { value: 'defined' })
    t.equal(requestLocal.tenant, 'defined')
  })
})

t.test('every key the reserved-key error lists is refused, and only those', async (t) => {
  await runWithLocals({}, () => {
    let message = ''
    try { Reflect.set(requestLocal, 'then', 1) } catch (err) { message = (err as Error).message }
    const listed = /other than the reserved (.+?) \(/.exec(message)?.[1].split(', ') ?? []
    t.same(listed, ['then', 'toJSON', '__proto__', 'constructor', 'prototype', '$requestLocals'])
    for (const key of listed) t.throws(() => { Reflect.set(requestLocal, key, 1) }, { code: 'ERR_REQUEST_LOCALS_RESERVED_KEY' }, key)
    Reflect.set(requestLocal, 'thenable', 1)
    t.equal(Reflect.get(requestLocal, 'thenable'), 1, 'a name close to a reserved one is an ordinary key')
  })
})
