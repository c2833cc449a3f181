import t, { type Test } from 'tap'
import { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import { bindEmitter, bindLocals, createRequestLocals, hasLocals, requestLocal, runWithLocals } from '../../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from '../helpers/http.js'
import { CallbackPool, JobQueue, jitter } from '../helpers/pools.js'
import { appWithUsers, seenUser } from '../helpers/users.js'
import '../helpers/locals.js'

// Each test drives many requests at once over keep-alive sockets, each with
// its own user, through a pool or queue, once without binding (to show the
// loss: no scope, or worse, another request's) and once with it.

const USERS = Array.from({ length: 12 }, (_, i) => `user-${i}`)

/** Sends one request per user, all released together; returns what each saw. */
async function everyUser (t: Test, app: FastifyInstance, path: string): Promise<Array<{ user: string, seen: unknown }>> {
  if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())
  return Promise.all(USERS.map(async (user) => {
    const res = await send({ port: portOf(app.server), path, agent, headers: { 'x-user': user } })
    return { user, seen: res.json() }
  }))
}

t.test('a callback pool hands waiters to other requests: unbound callbacks see the wrong user, bound ones their own', async (t) => {
  const app = await appWithUsers(t)
  const pool = new CallbackPool(['connection'])
  const barrier = new Barrier(USERS.length)
  app.get('/:mode', async (request) => {
    await barrier.arrive()
    const bound = (request.params as { mode: string }).mode === 'bound'
    return new Promise((resolve) => {
      const onAcquired = (connection: string): void => {
        const seen = seenUser()
        void jitter().then(() => {
          pool.release(connection)
          resolve({ seen })
        })
      }
      pool.acquire(bound ? bindLocals(onAcquired) : onAcquired)
    })
  })

  const unbound = await everyUser(t, app, '/unbound')
  const wrong = unbound.filter(({ user, seen }) => (seen as { seen: string }).seen !== user)
  t.ok(wrong.length >= USERS.length - 1, `without bindLocals, ${wrong.length} of ${USERS.length} callbacks ran in another request's scope`)
  t.ok(wrong.some(({ seen }) => USERS.includes((seen as { seen: string }).seen)), 'and read another request\'s user')

  const bound = await everyUser(t, app, '/bound')
  t.same(bound.map(({ seen }) => seen), USERS.map((user) => ({ seen: user })), 'with bindLocals every callback saw its own request')
})

t.test('a queue worker loop started outside requests runs callbacks with no scope; bindLocals restores it', async (t) => {
  const app = await appWithUsers(t)
  const queue = new JobQueue(async (payload: string) => { await jitter(); return payload })
  t.teardown(() => queue.stop())
  const barrier = new Barrier(USERS.length)
  app.get('/:mode', async (request) => {
    await barrier.arrive()
    const bound = (request.params as { mode: string }).mode === 'bound'
    return new Promise((resolve) => {
      const onDone = (result: string): void => resolve({ result, seen: seenUser() })
      queue.push(requestLocal.user!.id, bound ? bindLocals(onDone) : onDone)
    })
  })

  const unbound = await everyUser(t, app, '/unbound')
  t.same(unbound.map(({ seen }) => seen), USERS.map((user) => ({ result: user, seen: '(no scope)' })), 'the jobs ran, their callbacks had no scope')
  const bound = await everyUser(t, app, '/bound')
  t.same(bound.map(({ seen }) => seen), USERS.map((user) => ({ result: user, seen: user })), 'bound callbacks saw their own request')
})

t.test('bindEmitter makes every listener of a queue job\'s emitter run in the request\'s scope', async (t) => {
  const app = await appWithUsers(t)
  const queue = new JobQueue(async (payload: string) => { await jitter(); return payload })
  t.teardown(() => queue.stop())
  const barrier = new Barrier(USERS.length)
  app.get('/:mode', async (request) => {
    await barrier.arrive()
    const job = queue.submit(requestLocal.user!.id)
    if ((request.params as { mode: string }).mode === 'bound') t.equal(bindEmitter(job), job, 'returns the emitter')
    return new Promise((resolve) => {
      const seen: string[] = []
      const onProgress = (): void => { seen.push(`unused ${seenUser()}`) }
      job.on('progress', onProgress)
      job.off('progress', onProgress) // the application's own functions can still be removed
      job.once('progress', () => seen.push(`progress ${seenUser()}`))
      job.on('done', (result: string) => resolve({ result, seen: [...seen, `done ${seenUser()}`] }))
    })
  })

  const unbound = await everyUser(t, app, '/unbound')
  t.same(unbound.map(({ seen }) => seen), USERS.map((user) => ({ result: user, seen: ['progress (no scope)', 'done (no scope)'] })), 'listeners ran in the worker loop\'s context')
  const bound = await everyUser(t, app, '/bound')
  t.same(bound.map(({ seen }) => seen), USERS.map((user) => ({ result: user, seen: [`progress ${user}`, `done ${user}`] })), 'listeners saw their own request')
})

t.test('bindEmitter binds listeners added before and after, rebinding moves the emitter, and it refuses non-emitters', async (t) => {
  const emitter = new EventEmitter()
  const seen: string[] = []
  emitter.on('x', () => seen.push(`before ${seenUser()}`))
  runWithLocals({ user: { id: 'first' } }, () => bindEmitter(emitter))
  emitter.on('x', () => seen.push(`after ${seenUser()}`))
  runWithLocals({ user: { id: 'emitter-side' } }, () => emitter.emit('x'))
  t.same(seen.splice(0), ['before first', 'after first'])

  runWithLocals({ user: { id: 'second' } }, () => bindEmitter(emitter))
  emitter.emit('x')
  t.same(seen.splice(0), ['before second', 'after second'], 'the second binding replaces the first instead of nesting in it')

  bindEmitter(emitter)
  emitter.emit('x')
  t.same(seen, ['before (no scope)', 'after (no scope)'], 'bound outside a scope, listeners run outside one')

  for (const bad of [null, 42, {}, { emit () {} }]) {
    t.throws(() => bindEmitter(bad as unknown as EventEmitter), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /bindEmitter\(emitter\) expects an EventEmitter/ })
  }
})

t.test('bindEmitter and bindLocals carry other storages too (isolated instances, other libraries)', async (t) => {
  const audit = createRequestLocals<{ actor?: string }>()
  const emitter = new EventEmitter()
  const callback = audit.runWithLocals({ actor: 'cron' }, () => runWithLocals({ user: { id: 'u' } }, () => {
    bindEmitter(emitter)
    return bindLocals(() => [audit.requestLocal.actor, requestLocal.user?.id])
  }))
  const heard = new Promise((resolve) => emitter.once('x', () => resolve([audit.requestLocal.actor, requestLocal.user?.id])))
  emitter.emit('x')
  t.same(await heard, ['cron', 'u'])
  t.same(callback(), ['cron', 'u'])
  t.equal(hasLocals(), false)
})
