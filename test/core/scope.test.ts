import t from 'tap'
import { bindLocals, createRequestLocals, hasLocals, requestLocal, runWithLocals, tryGetLocals } from '../../src/index.js'
import '../helpers/locals.js'

t.test('runWithLocals opens a scope for sync and async work and returns its result', async (t) => {
  t.equal(hasLocals(), false)
  t.equal(tryGetLocals(), undefined)
  const sync = runWithLocals({ tenant: 'sync' }, () => requestLocal.tenant)
  t.equal(sync, 'sync')
  const result = await runWithLocals({ tenant: 'job' }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 1))
    t.equal(hasLocals(), true)
    return requestLocal.tenant
  })
  t.equal(result, 'job')
  t.equal(hasLocals(), false, 'the scope ends with the function')
})

t.test('errors thrown or rejected by the function propagate unchanged', async (t) => {
  const boom = new Error('boom')
  t.throws(() => runWithLocals({}, () => { throw boom }), boom)
  await t.rejects(runWithLocals({}, async () => { throw boom }), boom)
})

t.test('each scope gets a fresh store where no key resolves to Object.prototype', async (t) => {
  const stores = [1, 2].map(() => runWithLocals({}, () => tryGetLocals()))
  t.not(stores[0], stores[1])
  const store = stores[0] as Record<string, unknown>
  for (const key of ['toString', 'constructor', 'hasOwnProperty', '__proto__', 'valueOf']) {
    t.equal(store[key], undefined, key)
    t.notOk(key in store, `${key} in store`)
  }
  t.equal(Object.getPrototypeOf(Object.getPrototypeOf(store)), null, 'the prototype chain ends after one empty object')
  t.same(Object.getOwnPropertyNames(Object.getPrototypeOf(store)), [])
  const copy = runWithLocals({ tenant: 'acme' }, () => runWithLocals(tryGetLocals() as object, () => tryGetLocals()))
  t.same(Object.entries(copy as object), [['tenant', 'acme']], 'a store is plain data to runWithLocals')
})

t.test('a nested scope starts from a copy of the enclosing one; its writes do not leak out', async (t) => {
  await runWithLocals({ tenant: 'outer', tags: ['a'] }, async () => {
    await runWithLocals({ user: { id: 'inner' } }, async () => {
      t.equal(requestLocal.tenant, 'outer', 'inherits the enclosing values')
      t.same(requestLocal.user, { id: 'inner' })
      requestLocal.tenant = 'changed'
      await Promise.resolve()
    })
    t.equal(requestLocal.tenant, 'outer', 'the write stayed inside')
    t.equal(requestLocal.user, undefined, 'the inner value stayed inside')
    await runWithLocals({ tenant: 'override' }, () => {
      t.equal(requestLocal.tenant, 'override', 'given values win over inherited ones')
    })
  })
})

t.test('runWithLocals refuses bad arguments with clear errors', async (t) => {
  t.throws(() => runWithLocals({}, 'nope' as unknown as () => void), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /expects fn to be a function; found a string/ })
  t.throws(() => runWithLocals(null as unknown as object, () => {}), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /runWithLocals\(values\) must be a plain object of locals; found null/ })
  t.throws(() => runWithLocals([] as unknown as object, () => {}), { message: /found an array/ })
  t.throws(() => runWithLocals(new Map() as unknown as object, () => {}), { message: /found an instance of Map/ })
  t.throws(() => runWithLocals(new (class {})() as unknown as object, () => {}), { message: /found an object with a custom prototype/ })
  t.throws(() => runWithLocals({}, undefined as unknown as () => void), { message: /found undefined/ })
  t.equal(runWithLocals(Object.assign(Object.create(null), { tenant: 'np' }), () => requestLocal.tenant), 'np', 'null-prototype values are plain too')
  t.throws(() => runWithLocals(JSON.parse('{"__proto__": {"x": 1}}'), () => {}), { code: 'ERR_REQUEST_LOCALS_RESERVED_KEY', message: /runWithLocals\(values\): the key "__proto__"/ })
  t.equal(({} as Record<string, unknown>).x, undefined)
})

t.test('bindLocals keeps a callback in the scope it was bound in', async (t) => {
  // A queue whose worker loop was started outside any request: callbacks
  // it runs lose the caller's scope unless they were bound.
  const queue: Array<() => void> = []
  const worker = setInterval(() => { for (const job of queue.splice(0)) job() }, 1)
  t.teardown(() => clearInterval(worker))
  const runLater = (fn: () => void): void => { queue.push(fn) }

  const results = await Promise.all(['a', 'b', 'c'].map((id) => runWithLocals({ user: { id } }, () =>
    new Promise<[boolean, string | undefined]>((resolve) => {
      let lost = false
      runLater(() => { lost = !hasLocals() })
      runLater(bindLocals(() => resolve([lost, requestLocal.user?.id])))
    })
  )))
  t.same(results, [[true, 'a'], [true, 'b'], [true, 'c']], 'unbound callbacks lost the scope; bound ones kept their own')

  const unbound = bindLocals(() => hasLocals())
  t.equal(runWithLocals({}, unbound), false, 'bound outside a scope, it runs outside one')
  t.throws(() => bindLocals(42 as unknown as () => void), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /found a number/ })
})

t.test('createRequestLocals gives an isolated, separately typed instance', async (t) => {
  interface JobLocals { jobId?: string }
  const jobs = createRequestLocals<JobLocals>()
  jobs.runWithLocals({ jobId: 'j1' }, () => {
    t.equal(jobs.requestLocal.jobId, 'j1')
    t.equal(jobs.hasLocals(), true)
    t.equal(hasLocals(), false, 'the shared instance sees no scope')
    t.same(jobs.tryGetLocals(), { jobId: 'j1' })
    t.equal(jobs.bindLocals(() => jobs.requestLocal.jobId)(), 'j1')
  })
  runWithLocals({ tenant: 't' }, () => {
    t.equal(jobs.hasLocals(), false, 'and the other way round')
    t.throws(() => jobs.requestLocal.jobId, { code: 'ERR_REQUEST_LOCALS_NO_SCOPE' })
  })
})
