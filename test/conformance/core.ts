import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { bindLocals, defineRequestResource, hasLocals, requestLocal, runWithLocals, tryGetLocals } from '../../src/index.js'
import { Barrier } from '../helpers/http.js'
import type { Test } from './harness.js'
import '../helpers/locals.js'

// The core with no framework at all: what every adapter builds on, checked
// on each runtime's own AsyncLocalStorage and scheduling (timers,
// setImmediate, microtasks, promise chains, event emitters).

const CONCURRENT = 300

const randomDelay = (max = 5) => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * max))

export function coreConformance (test: Test): void {
  test(`${CONCURRENT} interleaved runWithLocals scopes keep their own values across timers, setImmediate, microtasks and awaits`, async () => {
    const barrier = new Barrier(CONCURRENT)
    const seen = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => runWithLocals({ tenant: `t-${i}` }, async () => {
      await barrier.arrive()
      const points: unknown[] = []
      await randomDelay()
      points.push(requestLocal.tenant)
      await new Promise<void>((resolve) => setImmediate(() => { points.push(requestLocal.tenant); resolve() }))
      await new Promise<void>((resolve) => queueMicrotask(() => { points.push(requestLocal.tenant); resolve() }))
      await new Promise<void>((resolve) => setTimeout(() => { points.push(requestLocal.tenant); resolve() }, Math.random() * 3))
      return points
    })))
    const wrong = seen.flatMap((points, i) => points.every((tenant) => tenant === `t-${i}`) ? [] : [{ i, points }])
    assert.deepEqual(wrong, [], 'every scope saw only its own tenant at every point')
    assert.equal(hasLocals(), false, 'nothing leaks out of the scopes')
  })

  test('a nested scope starts from a copy and its writes stay inside; outside any scope reads throw', async () => {
    await runWithLocals({ tenant: 'outer', tags: ['a'] }, async () => {
      await runWithLocals({ user: { id: 'inner' } }, async () => {
        await randomDelay()
        assert.equal(requestLocal.tenant, 'outer')
        requestLocal.tenant = 'changed inside'
      })
      assert.equal(requestLocal.tenant, 'outer')
      assert.equal(requestLocal.user, undefined)
    })
    assert.equal(tryGetLocals(), undefined)
    assert.throws(() => requestLocal.tenant, { code: 'ERR_REQUEST_LOCALS_NO_SCOPE' })
  })

  test('bindLocals carries a scope into a callback an emitter calls from elsewhere', async () => {
    const emitter = new EventEmitter()
    const heard: unknown[] = []
    await runWithLocals({ tenant: 'bound' }, async () => {
      emitter.on('tick', bindLocals(() => { heard.push(requestLocal.tenant) }))
    })
    await runWithLocals({ tenant: 'emitter' }, async () => { emitter.emit('tick') })
    emitter.emit('tick')
    assert.deepEqual(heard, ['bound', 'bound'])
  })

  test('resources made in runWithLocals scopes are released once each, in their scope, with the outcome', async () => {
    const disposed: string[] = []
    const resource = defineRequestResource({
      name: 'conformance',
      create: () => ({ owner: requestLocal.tenant }),
      dispose: (value, outcome) => { disposed.push(`${String(value.owner)}/${String(requestLocal.tenant)}:${outcome.status}`) }
    })
    const barrier = new Barrier(20)
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => runWithLocals({ tenant: `t-${i}` }, async () => {
      await barrier.arrive()
      await Promise.all([resource.get(), resource.get()])
      await randomDelay()
      if (i % 2 === 1) throw new Error('failed')
    })))
    assert.equal(results.filter((result) => result.status === 'rejected').length, 10)
    const expected = Array.from({ length: 20 }, (_, i) => `t-${i}/t-${i}:${i % 2 === 1 ? 'failed' : 'completed'}`)
    assert.deepEqual([...disposed].sort(), expected.sort())
  })
}
