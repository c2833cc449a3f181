import t from 'tap'
import { requestLocal, runWithLocals, snapshotLocals, type RequestLocals } from '../../src/index.js'
import '../helpers/locals.js'

// A job queue stores its jobs as JSON. A snapshot made for one must hold
// only what JSON gives back unchanged, or fail in the request, naming where.

interface Profile { id: string, [field: string]: unknown }

function snapshotUser (user: unknown): unknown {
  return runWithLocals({ user: user as RequestLocals['user'] }, () => snapshotLocals(['user']).user)
}

t.test('JSON data is copied deeply and survives a JSON round trip unchanged', async (t) => {
  const shared = { role: 'admin' }
  const bare = Object.assign(Object.create(null) as Record<string, unknown>, { plan: 'pro' })
  const user: Profile = {
    id: 'u1',
    name: 'Ada "the first" Lovelace\n',
    age: 36,
    ratio: -0.5,
    admin: false,
    manager: null,
    roles: [shared, shared, ['nested', 1, true, null]],
    billing: bare,
    nickname: undefined,
    ...JSON.parse('{"__proto__": {"polluted": true}}') as object
  }
  const copy = snapshotUser(user) as Profile
  t.not(copy, user)
  t.not((copy.roles as unknown[])[0], shared, 'objects are copied, not shared')
  t.same(copy.roles, [{ role: 'admin' }, { role: 'admin' }, ['nested', 1, true, null]], 'an object reached twice (not a cycle) is copied twice')
  t.equal(Object.getPrototypeOf(copy.billing), Object.prototype, 'a null-prototype object arrives as an ordinary one')
  t.equal(Object.getPrototypeOf(copy), Object.prototype, 'an own "__proto__" key stays a key: it does not become the prototype')
  t.same(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value, { polluted: true })
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing reached Object.prototype')
  t.ok('nickname' in copy && copy.nickname === undefined, 'a property set to undefined stays (JSON leaves it out, which reads the same)')
  t.same(JSON.parse(JSON.stringify(copy)), JSON.parse(JSON.stringify(user)), 'what a queue stores is what the request held')
  shared.role = 'changed'
  t.same((copy.roles as Array<{ role: string }>)[0].role, 'admin', 'later changes do not reach the snapshot')
})

t.test('anything JSON would change or drop is refused, naming the key and the path to the value', async (t) => {
  class Account { id = 'a1' }
  const cyclic: Record<string, unknown> = { id: 'u1' }
  cyclic.self = cyclic
  const cases: Array<[string, unknown, RegExp]> = [
    ['a Date', { id: 'u1', since: new Date(0) }, /requestLocal\.user\.since cannot be snapshotted as JSON: found an instance of Date\. .*Store date\.toISOString\(\)/],
    ['a Map', { id: 'u1', prefs: new Map() }, /requestLocal\.user\.prefs .*found an instance of Map\. .*Object\.fromEntries\(map\)/],
    ['a Set', { id: 'u1', teams: [new Set()] }, /requestLocal\.user\.teams\[0\] .*found an instance of Set\. .*\[\.\.\.set\]/],
    ['a BigInt', { id: 'u1', balance: 10n }, /requestLocal\.user\.balance .*found a bigint\. Expected JSON data .*Store String\(value\)/],
    ['NaN', { id: 'u1', score: NaN }, /requestLocal\.user\.score .*found NaN\. .*Store null or a string instead/],
    ['Infinity', { id: 'u1', limits: { max: -Infinity } }, /requestLocal\.user\.limits\.max .*found -Infinity/],
    ['undefined in an array', { id: 'u1', tags: ['a', undefined] }, /requestLocal\.user\.tags\[1\] .*found undefined \(JSON turns it into null in an array\)\. .*Store null instead/],
    ['a hole in an array', { id: 'u1', tags: ['a', , 'c'] }, /requestLocal\.user\.tags\[1\] .*found undefined/], // eslint-disable-line no-sparse-arrays
    ['a function', { id: 'u1', 'full name': () => 'Ada' }, /requestLocal\.user\["full name"\] .*found a function\. .*rebuild the object where the snapshot is reopened/],
    ['a symbol', { id: 'u1', kind: Symbol('admin') }, /requestLocal\.user\.kind .*found a symbol/],
    ['a class instance', { id: 'u1', account: new Account() }, /requestLocal\.user\.account .*found an instance of Account/],
    ['a cycle', cyclic, /requestLocal\.user\.self .*found a cycle \(the value contains itself\)\. .*without the back reference/]
  ]
  for (const [name, user, message] of cases) {
    t.throws(() => snapshotUser(user), { name: 'RequestLocalsError', code: 'ERR_REQUEST_LOCALS_NOT_CLONEABLE', message }, name)
  }
  t.throws(() => snapshotUser(new Account()), { message: /^snapshotLocals\(\): requestLocal\.user cannot be snapshotted as JSON: found an instance of Account\. .*For a snapshot that only goes to a worker thread, pass \{ transport: 'structured-clone' \}\.$/ }, 'the top-level value too, with the way out for worker threads')
  runWithLocals({ tags: ['a'] }, () => {
    requestLocal.seen = 12n as unknown as string
    t.throws(() => snapshotLocals(['tags', 'seen']), { message: /requestLocal\.seen .*found a bigint/ }, 'any chosen key is checked')
    t.same(snapshotLocals(['tags']).tags, ['a'], 'the keys left out are not')
  })
})
