import t from 'tap'
import http from 'node:http'
import { extname } from 'node:path'
import { Worker } from 'node:worker_threads'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { createRequestLocals, requestId, requestLocal, runWithLocals, snapshotLocals, type SnapshotOptions } from '../../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

const USERS = Array.from({ length: 12 }, (_, i) => `user-${i}`)

t.test('a snapshot posted to a worker thread reopens there as the request\'s scope', async (t) => {
  // The fixture in this file's own language: TypeScript under tap, the
  // compiled JavaScript in the quick suite.
  const worker = new Worker(new URL(`../fixtures/locals-worker${extname(import.meta.url)}`, import.meta.url))
  t.teardown(() => worker.terminate())
  // One worker serves every request; replies come back in any order.
  const pending = new Map<number, (reply: unknown) => void>()
  worker.on('message', (reply: { id: number }) => { pending.get(reply.id)!(reply); pending.delete(reply.id) })
  let nextId = 0
  const ask = (task: object): Promise<unknown> => new Promise((resolve) => {
    const id = ++nextId
    pending.set(id, resolve)
    worker.postMessage({ ...task, id })
  })

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { defaults: { tenant: 'acme' } })
  app.addHook('onRequest', async (request) => {
    requestLocal.user = { id: String(request.headers['x-user']) }
  })
  const barrier = new Barrier(USERS.length)
  app.get('/:mode', async (request) => {
    await barrier.arrive()
    const withSnapshot = (request.params as { mode: string }).mode === 'snapshot'
    const reply = await ask(withSnapshot ? { locals: snapshotLocals(['user', 'tenant']) } : {}) as { caller?: string, error?: string }
    return `${reply.caller ?? reply.error!} (request ${request.id})`
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())
  const all = (path: string): Promise<string[]> =>
    Promise.all(USERS.map(async (user) => (await send({ port: portOf(app.server), path, agent, headers: { 'x-user': user } })).text))

  const none = await all('/none')
  t.match(none, USERS.map(() => /^ERR_REQUEST_LOCALS_NO_SCOPE \(request req-\w+\)$/), 'without a snapshot the worker has no scope')
  const replies = await all('/snapshot')
  t.match(replies, USERS.map((user) => new RegExp(`^${user}@acme (req-\\w+) \\(request \\1\\)$`)), 'with one, each task ran in its own request\'s values and request id')
  t.equal(new Set(replies).size, USERS.length)
})

t.test('a snapshot is a plain, deep copy of the chosen keys that were set, plus the scope\'s request id', async (t) => {
  await runWithLocals({ user: { id: 'u1' }, tags: ['a'], tenant: undefined }, async () => {
    const snapshot = snapshotLocals(['user', 'tags', 'tenant', 'seen'])
    const identity = { requestId: requestId() }
    t.equal(Object.getPrototypeOf(snapshot), Object.prototype, 'an ordinary object, as postMessage and JSON produce')
    t.same(Object.keys(snapshot), ['user', 'tags', 'tenant', '$requestLocals'], 'unset keys are left out; keys set to undefined stay')
    requestLocal.tags!.push('b')
    requestLocal.user = { id: 'changed' }
    t.same(snapshot, { user: { id: 'u1' }, tags: ['a'], tenant: undefined, $requestLocals: identity }, 'later writes do not reach it')
    t.same(JSON.parse(JSON.stringify(snapshot)), { user: { id: 'u1' }, tags: ['a'], $requestLocals: identity })
    t.equal(runWithLocals(JSON.parse(JSON.stringify(snapshot)), () => requestLocal.user!.id), 'u1', 'a JSON round trip reopens too (job queues)')
    t.same(snapshotLocals([]), { $requestLocals: identity })
  })

  const jobs = createRequestLocals<{ jobId: string }>()
  t.match(jobs.runWithLocals({ jobId: 'j1' }, () => jobs.snapshotLocals(['jobId'])), { jobId: 'j1', $requestLocals: { requestId: /^[0-9a-f-]{36}$/ } }, 'isolated instances snapshot their own values')
})

t.test('structured-clone transport, for worker threads: what structuredClone copies, and it refuses the rest naming the key', async (t) => {
  const socket = new http.Agent()
  const since = new Date('2026-01-02T03:04:05Z')
  runWithLocals({ user: { id: 'u1' }, since, seen: (() => 'fn') as unknown as string, tags: [socket] as unknown as string[] }, () => {
    const snapshot = snapshotLocals(['user', 'since'], { transport: 'structured-clone' })
    t.ok(snapshot.since instanceof Date && snapshot.since !== since && snapshot.since.getTime() === since.getTime(), 'a Date arrives as a copy of itself')
    t.same(snapshot.$requestLocals, { requestId: requestId() }, 'the request id travels too')
    t.throws(() => snapshotLocals(['user', 'seen'], { transport: 'structured-clone' }), {
      code: 'ERR_REQUEST_LOCALS_NOT_CLONEABLE',
      message: /snapshotLocals\(\): requestLocal\.seen cannot be snapshotted: structuredClone failed on a function .*Leave "seen" out of the keys/
    })
    t.throws(() => snapshotLocals(['tags'], { transport: 'structured-clone' }), { code: 'ERR_REQUEST_LOCALS_NOT_CLONEABLE', message: /requestLocal\.tags .* on an array/ })
    t.same(snapshotLocals(['user'], { transport: 'json' }), { user: { id: 'u1' }, $requestLocals: { requestId: requestId() } }, 'the other keys still snapshot')
    t.throws(() => snapshotLocals('user' as unknown as ['user']), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /expects an array of key names; found a string/ })
    t.throws(() => snapshotLocals([1] as unknown as ['user']), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT' })
    t.throws(() => snapshotLocals(['user'], 'json' as unknown as SnapshotOptions), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /options must be a plain object; found a string/ })
    t.throws(() => snapshotLocals(['user'], null as unknown as SnapshotOptions), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /found null/ })
    t.throws(() => snapshotLocals(['user'], { transport: 'msgpack' as 'json' }), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /options\.transport to be 'json' or 'structured-clone'; found "msgpack"/ })
    t.throws(() => snapshotLocals(['user'], { transport: 1 as unknown as 'json' }), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /found a number/ })
  })
  t.throws(() => snapshotLocals(['user']), { code: 'ERR_REQUEST_LOCALS_NO_SCOPE', message: /^snapshotLocals\(keys\) was called outside a request scope\. .*Call it from the request/ })
})
