import t from 'tap'
import { bindLocals, createRequestLocals, defineRequestResource, requestLocal, runWithLocals, type RequestResource, type ScopeOutcome } from '../../src/index.js'
import { sharedStorage } from '../../src/core/storage.js'
import { attachRequest } from '../../src/core/scope-state.js'
import { endingOf } from '../../src/lifecycle/scope-end.js'
import { Barrier, deferred } from '../helpers/http.js'
import '../helpers/locals.js'

// A resource that records what happens to it: each instance is numbered,
// and every dispose is logged with its outcome.
function tracked (name = 'conn') {
  let made = 0
  const log: string[] = []
  const outcomes: ScopeOutcome[] = []
  const resource = defineRequestResource({
    name,
    async create () {
      await Promise.resolve()
      made++
      log.push(`create ${name}#${made} for ${requestLocal.tenant ?? 'none'}`)
      return { id: `${name}#${made}` }
    },
    async dispose (value, outcome) {
      await Promise.resolve()
      outcomes.push(outcome)
      log.push(`dispose ${value.id} ${outcome.status} in ${requestLocal.tenant ?? 'none'}`)
    }
  })
  return { resource, log, outcomes, made: () => made }
}

t.test('create runs lazily on the first get(), once per scope, and never for scopes that do not use it', async (t) => {
  const { resource, log, made } = tracked()
  await runWithLocals({ tenant: 'unused' }, async () => { await Promise.resolve() })
  t.equal(made(), 0, 'a scope without get() creates nothing')

  const seen = await runWithLocals({ tenant: 'a' }, async () => {
    t.equal(made(), 0, 'nothing is made before get()')
    const first = await resource.get()
    const second = await resource.get()
    return [first, second]
  })
  t.equal(seen[0], seen[1], 'the same instance for the whole scope')
  t.same(log, ['create conn#1 for a', 'dispose conn#1 completed in a'])
})

t.test('concurrent first get() calls share one creation', async (t) => {
  const { resource, made } = tracked()
  const barrier = new Barrier(20)
  const values = await runWithLocals({}, () => Promise.all(Array.from({ length: 20 }, async () => {
    await barrier.arrive()
    return resource.get()
  })))
  t.equal(made(), 1)
  t.equal(new Set(values).size, 1)
})

t.test('each scope gets its own instance, never another scope\'s', async (t) => {
  const { resource, made } = tracked()
  const barrier = new Barrier(50)
  const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => runWithLocals({ tenant: `t${i}` }, async () => {
    await barrier.arrive()
    const value = await resource.get()
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
    t.equal(await resource.get(), value, 'stable within its scope')
    return value.id
  })))
  t.equal(made(), 50)
  t.equal(new Set(ids).size, 50, 'no instance was shared')
})

t.test('dispose runs exactly once, with an outcome that tells success from failure', async (t) => {
  const { resource, outcomes } = tracked()
  await runWithLocals({}, async () => { await resource.get() })
  const boom = new Error('boom')
  await t.rejects(runWithLocals({}, async () => { await resource.get(); throw boom }), boom, 'the function\'s error is returned unchanged')
  t.throws(() => runWithLocals({}, () => { void resource.get(); throw boom }), boom)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(outcomes.slice(0, 2), [{ ok: true, status: 'completed' }, { ok: false, status: 'failed', error: boom }])
  // The sync function ended the scope while the creation was running: the
  // value is disposed when it arrives, with the failure.
  const last = deferred()
  const { resource: other, outcomes: otherOutcomes } = tracked()
  let rejected: unknown
  t.throws(() => runWithLocals({}, () => {
    other.get().catch((err: unknown) => { rejected = err; last.resolve() })
    throw boom
  }), boom)
  await last.promise
  t.match(rejected, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED', message: /"conn" was requested after its scope ended/ })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(otherOutcomes, [{ ok: false, status: 'failed', error: boom }], 'made after the end, disposed once')
})

t.test('the promise of runWithLocals settles after disposal; a sync function leaves it running', async (t) => {
  const released = deferred()
  let disposed = false
  const resource = defineRequestResource({
    name: 'slow',
    create: () => 'value',
    async dispose () { await released.promise; disposed = true }
  })
  let settled = false
  const run = runWithLocals({}, async () => resource.get()).then((value) => { settled = true; return value })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(settled, false, 'still disposing')
  released.resolve()
  t.equal(await run, 'value', 'resolves with the function\'s own result')
  t.equal(disposed, true)

  const sync = runWithLocals({}, () => { void resource.get(); return 'sync result' })
  t.equal(sync, 'sync result', 'a sync function returns at once')
})

t.test('values with Symbol.asyncDispose or Symbol.dispose are disposed that way; others are dropped', async (t) => {
  const calls: string[] = []
  const asyncOne = defineRequestResource({ name: 'async', create: () => ({ async [Symbol.asyncDispose] () { calls.push('asyncDispose') }, [Symbol.dispose] () { calls.push('not this one') } }) })
  const syncOne = defineRequestResource({ name: 'sync', create: () => ({ [Symbol.dispose] () { calls.push('dispose') } }) })
  const plain = defineRequestResource({ name: 'plain', create: () => ({ memo: 1 }) })
  const primitive = defineRequestResource({ create: () => 42 })
  await runWithLocals({}, async () => {
    await asyncOne.get()
    await syncOne.get()
    await plain.get()
    t.equal(await primitive.get(), 42)
  })
  t.same(calls, ['dispose', 'asyncDispose'])
  t.equal(primitive.name, 'unnamed')
})

t.test('resources are disposed in reverse order of creation; a dependency after what depends on it', async (t) => {
  const order: string[] = []
  const make = (name: string, create: () => Promise<string>): RequestResource<string> => defineRequestResource({
    name, create, dispose: (value) => { order.push(value) }
  })
  const connection = make('connection', async () => 'connection')
  const transaction = make('transaction', async () => `transaction on ${await connection.get()}`)
  const cache = make('cache', async () => 'cache')
  await runWithLocals({}, async () => {
    await cache.get()
    await transaction.get()
  })
  t.same(order, ['transaction on connection', 'connection', 'cache'])
})

t.test('a failing create rejects get() with its cause; a later get() tries again', async (t) => {
  const cause = new Error('pool exhausted')
  let attempts = 0
  const disposed: number[] = []
  const resource = defineRequestResource({
    name: 'flaky',
    create: () => {
      attempts++
      if (attempts === 1) throw cause
      if (attempts === 2) return Promise.reject(cause)
      return attempts
    },
    dispose: (value) => { disposed.push(value) }
  })
  await runWithLocals({}, async () => {
    const [a, b] = await Promise.allSettled([resource.get(), resource.get()])
    t.same([a, b], [{ status: 'rejected', reason: cause }, { status: 'rejected', reason: cause }], 'both waiters see the cause, one attempt')
    await t.rejects(resource.get(), cause)
    t.equal(await resource.get(), 3)
  })
  t.same(disposed, [3], 'only what was made is disposed')
})

t.test('a failing dispose is reported and does not stop the others or change the result', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const warned = new Promise((resolve) => process.once('warning', resolve))
  const order: string[] = []
  const first = defineRequestResource({ name: 'first', create: () => 1, dispose: () => { order.push('first') } })
  const broken = defineRequestResource({ name: 'broken', create: () => 2, dispose: async () => { order.push('broken'); throw new Error('connection lost') } })
  const last = defineRequestResource({ name: 'last', create: () => 3, dispose: () => { order.push('last'); throw 'not an error' } }) // eslint-disable-line no-throw-literal
  const result = await runWithLocals({}, async () => {
    await first.get()
    await broken.get()
    await last.get()
    return 'result'
  })
  await warned
  t.equal(result, 'result')
  t.same(order, ['last', 'broken', 'first'], 'every dispose ran')
  t.match(warnings, [
    { name: 'RequestLocalsError', code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', message: /Disposing the request resource "last" failed: not an error/ },
    { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', message: /"broken" failed: connection lost/, cause: { message: 'connection lost' } }
  ])
})

t.test('get() outside a scope and after its end rejects with a message naming the resource', async (t) => {
  const { resource, made } = tracked('db')
  await t.rejects(resource.get(), { name: 'RequestLocalsError', code: 'ERR_REQUEST_LOCALS_NO_SCOPE', message: /The request resource "db": get\(\) was called outside a request scope.*runWithLocals/ })

  let later: (() => Promise<unknown>) | undefined
  await runWithLocals({}, async () => { later = bindLocals(() => resource.get()) })
  await t.rejects(later!(), { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED', message: /"db" was requested after its scope ended/ }, 'an ended scope that never used the resource')

  await runWithLocals({}, async () => {
    await resource.get()
    later = bindLocals(() => resource.get())
  })
  await t.rejects(later!(), { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' }, 'an ended scope that used it')
  t.equal(made(), 1)
})

t.test('a nested runWithLocals owns its resources: its own instance, disposed when it settles', async (t) => {
  const { resource, log } = tracked()
  await runWithLocals({ tenant: 'outer' }, async () => {
    const outer = await resource.get()
    const inner = await runWithLocals({ tenant: 'inner' }, () => resource.get())
    t.not(inner, outer)
    t.equal(await resource.get(), outer, 'the outer scope keeps its own')
  })
  t.same(log, ['create conn#1 for outer', 'create conn#2 for inner', 'dispose conn#2 completed in inner', 'dispose conn#1 completed in outer'])
})

t.test('createRequestLocals instances have their own resources', async (t) => {
  const jobs = createRequestLocals<{ jobId: string }>()
  const disposed: string[] = []
  const resource = jobs.defineRequestResource({ name: 'job', create: () => jobs.requestLocal.jobId, dispose: (id) => { disposed.push(id) } })
  t.equal(await jobs.runWithLocals({ jobId: 'j1' }, () => resource.get()), 'j1')
  await runWithLocals({}, async () => {
    await t.rejects(resource.get(), { code: 'ERR_REQUEST_LOCALS_NO_SCOPE' }, 'the shared scope is not the instance\'s')
  })
  t.same(disposed, ['j1'])
})

t.test('a scope whose end cannot be seen creates nothing', async (t) => {
  // A request scope opened by an adapter that forgot to attach its response
  // has no visible end, so nothing may be created in it.
  const resource = defineRequestResource({ name: 'job', create: () => 'made', dispose: () => {} })
  const store = Object.create(null)
  attachRequest(store, { url: '/' })
  await sharedStorage().run(store, async () => {
    await t.rejects(resource.get(), { code: 'ERR_REQUEST_LOCALS_NO_SCOPE', message: /"job" was requested in a scope whose end request-locals cannot see/ })
  })
})

t.test('defineRequestResource checks its options', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /defineRequestResource\(options\) must be a plain object; found null/],
    [{}, /create must be a function that makes the resource; found undefined/],
    [{ create: () => 1, dispose: 'no' }, /dispose must be a function \(value, outcome\) => void.*found a string/],
    [{ create: () => 1, name: 1 }, /name must be a string; found a number/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => defineRequestResource(options as never), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message })
  }
})

t.test('a definition passed through the ending protocol without disposeTimeout (an older installed copy) is disposed with the default bound', async (t) => {
  // Copies older than 1.0 know nothing of disposeTimeout: their definitions
  // reach this copy's scope through the protocol's get() without it.
  const disposed: string[] = []
  const mine = defineRequestResource({ name: 'mine', create: () => 'made', dispose: () => { disposed.push('mine') } })
  await runWithLocals({}, async () => {
    await mine.get()
    const ending = endingOf(sharedStorage().getStore()!)!
    t.equal(await ending.get({ name: 'older', create: () => 'older value', dispose: (value) => { disposed.push(String(value)) } }), 'older value')
  })
  t.same(disposed, ['older value', 'mine'], 'both disposed, the latest made first')
})
