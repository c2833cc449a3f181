import t from 'tap'
import http, { type ServerResponse } from 'node:http'
import { PassThrough, Writable } from 'node:stream'
import Fastify, { type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { defineRequestResource, requestLocal, type ScopeOutcome } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf, send, sendIncompleteBody } from '../helpers/http.js'
import '../helpers/locals.js'

declare module '../../src/index.js' {
  interface RequestLocals {
    raw?: ServerResponse
  }
}

interface Disposal {
  outcome: ScopeOutcome
  /** Whether the response had closed when dispose ran: never before. */
  responseClosed: boolean
}

// A transaction-like resource named after the request's x-id header, that
// records every creation and disposal so each ending can be checked.
function trackedTransaction () {
  const created: string[] = []
  const disposals = new Map<string, Disposal[]>()
  const waiting = new Map<string, Array<() => void>>()
  const transaction = defineRequestResource({
    name: 'transaction',
    async create () {
      const id = requestLocal.seen!
      created.push(id)
      return { id, raw: requestLocal.raw! }
    },
    async dispose (tx, outcome) {
      const list = disposals.get(tx.id) ?? []
      list.push({ outcome, responseClosed: tx.raw.destroyed })
      disposals.set(tx.id, list)
      for (const resolve of waiting.get(tx.id) ?? []) resolve()
    }
  })
  function disposed (id: string): Promise<Disposal> {
    const done = disposals.get(id)
    if (done !== undefined) return Promise.resolve(done[0])
    return new Promise((resolve) => {
      const list = waiting.get(id) ?? []
      list.push(() => resolve(disposals.get(id)![0]))
      waiting.set(id, list)
    })
  }
  return { transaction, created, disposals, disposed }
}

async function appWith (options: FastifyHttpOptions<http.Server> = {}): Promise<FastifyInstance> {
  const app = Fastify(options)
  await app.register(fastifyRequestLocals, { defaults: (request) => ({ seen: String(request.headers['x-id']) }) })
  app.addHook('onRequest', async (_request, reply) => { requestLocal.raw = reply.raw })
  t.teardown(() => app.close())
  return app
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return portOf(app.server)
}

/** Starts a request and destroys its socket once `reached` resolves. */
function abortWhen (port: number, id: string, reached: Promise<void>, path = '/'): void {
  const client = http.request({ port, host: '127.0.0.1', path, headers: { 'x-id': id } })
  client.on('error', () => {})
  client.end()
  void reached.then(() => client.destroy())
}

t.test('completed, failed and 5xx responses end the scope with the right outcome, after the response', async (t) => {
  const { transaction, disposed, disposals } = trackedTransaction()
  const app = await appWith()
  const boom = Object.assign(new Error('insufficient funds'), { statusCode: 409 })
  app.get('/ok', async () => { await transaction.get(); return { ok: true } })
  app.get('/throw', async () => { await transaction.get(); throw boom })
  app.get('/500', async (_request, reply) => { await transaction.get(); return reply.code(500).send({ manual: true }) })
  app.get('/404', async (_request, reply) => { await transaction.get(); return reply.code(404).send({ missing: true }) })
  app.get('/hook', { preHandler: async () => { await transaction.get(); throw new Error('hook failed') } }, async () => 'unreachable')
  const port = await listen(app)
  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())

  t.equal((await send({ port, agent, path: '/ok', headers: { 'x-id': 'ok' } })).status, 200)
  t.equal((await send({ port, agent, path: '/throw', headers: { 'x-id': 'throw' } })).status, 409)
  t.equal((await send({ port, agent, path: '/500', headers: { 'x-id': '500' } })).status, 500)
  t.equal((await send({ port, agent, path: '/404', headers: { 'x-id': '404' } })).status, 404)
  t.equal((await send({ port, agent, path: '/hook', headers: { 'x-id': 'hook' } })).status, 500)
  t.same(await disposed('ok'), { outcome: { ok: true, status: 'completed' }, responseClosed: true })
  t.same(await disposed('throw'), { outcome: { ok: false, status: 'failed', error: boom }, responseClosed: true }, 'the thrown error, even though its response was sent in full')
  t.same(await disposed('500'), { outcome: { ok: false, status: 'failed', error: undefined }, responseClosed: true })
  t.same(await disposed('404'), { outcome: { ok: true, status: 'completed' }, responseClosed: true }, 'a 4xx sent without an error is a completed request')
  t.match(await disposed('hook'), { outcome: { ok: false, status: 'failed', error: { message: 'hook failed' } } })
  await app.close()
  t.same([...disposals.values()].map((list) => list.length), [1, 1, 1, 1, 1], 'each disposed exactly once')
})

t.test('inject() requests end their scope too', async (t) => {
  const { transaction, disposed } = trackedTransaction()
  const app = await appWith()
  app.get('/', async () => { await transaction.get(); return 'ok' })
  await app.inject({ url: '/', headers: { 'x-id': 'injected' } })
  t.same((await disposed('injected')).outcome, { ok: true, status: 'completed' })
})

t.test('requests that never call get() create nothing and add no listener', async (t) => {
  const { transaction, created } = trackedTransaction()
  const bare = Fastify()
  t.teardown(() => bare.close())
  let bareListeners = -1
  bare.get('/', async (_request, reply) => { bareListeners = reply.raw.listenerCount('close'); return 'ok' })
  const app = await appWith()
  const counts: number[] = []
  app.get('/none', async (request, reply) => {
    counts.push(reply.raw.listenerCount('close'), Object.getOwnPropertySymbols(request.locals).length)
    return 'ok'
  })
  app.get('/some', async (request, reply) => {
    await transaction.get()
    counts.push(reply.raw.listenerCount('close'), Object.getOwnPropertySymbols(request.locals).length)
    return 'ok'
  })
  await bare.inject('/')
  await app.inject('/none')
  await app.inject('/some')
  t.same(created, ['undefined'], 'only the request that asked made one')
  t.same(counts, [bareListeners, 2, bareListeners + 1, 3], 'one listener and one symbol, only once a resource is used')
})

t.test('a client that goes away mid-handler: aborted, and the handler can no longer get resources', async (t) => {
  const { transaction, disposed } = trackedTransaction()
  const app = await appWith()
  const reached = deferred()
  const aborted = deferred()
  const afterAbort = deferred<unknown>()
  app.addHook('onRequestAbort', async (_request) => { aborted.resolve() })
  app.get('/', async () => {
    const tx = await transaction.get()
    reached.resolve()
    await aborted.promise
    await disposed('gone')
    afterAbort.resolve(await transaction.get().catch((err: unknown) => err))
    return tx.id
  })
  abortWhen(await listen(app), 'gone', reached.promise)
  t.same(await disposed('gone'), { outcome: { ok: false, status: 'aborted' }, responseClosed: true })
  t.match(await afterAbort.promise, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
})

t.test('a client that goes away while the resource is being created: it is disposed once it exists', async (t) => {
  const connecting = deferred()
  const finishConnect = deferred()
  const log: string[] = []
  const released = deferred()
  const slow = defineRequestResource({
    name: 'slow',
    async create () { connecting.resolve(); await finishConnect.promise; log.push('created'); return 'conn' },
    dispose: (_value, outcome) => { log.push(`disposed ${outcome.status}`); released.resolve() }
  })
  const app = await appWith()
  const rejected = deferred<unknown>()
  const aborted = deferred()
  app.addHook('onRequestAbort', async (_request) => { aborted.resolve() })
  app.get('/', async () => {
    try { return await slow.get() } catch (err) { rejected.resolve(err); throw err }
  })
  abortWhen(await listen(app), 'slow', connecting.promise)
  await aborted.promise
  finishConnect.resolve()
  t.match(await rejected.promise, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' }, 'the waiting get() is refused, not handed a disposed value')
  await released.promise
  t.same(log, ['created', 'disposed aborted'])
})

t.test('connectionTimeout: the timed-out request is disposed as aborted', async (t) => {
  const { transaction, disposed } = trackedTransaction()
  const app = await appWith({ connectionTimeout: 300 })
  const timedOut = deferred()
  app.addHook('onTimeout', async () => { timedOut.resolve() })
  app.get('/', async () => {
    await transaction.get()
    await timedOut.promise
    await disposed('slow')
    return 'late'
  })
  const client = http.get({ port: await listen(app), host: '127.0.0.1', headers: { 'x-id': 'slow' } })
  const hungUp = new Promise((resolve) => client.on('error', resolve))
  t.same((await disposed('slow')).outcome, { ok: false, status: 'aborted' })
  t.match(await hungUp, { code: 'ECONNRESET' })
})

t.test('requestTimeout: a body that never completes is disposed as aborted', async (t) => {
  const { transaction, disposed, created } = trackedTransaction()
  const app = await appWith({ requestTimeout: 300, http: { headersTimeout: 300, connectionsCheckingInterval: 20 } })
  app.addHook('preParsing', async () => { await transaction.get() })
  app.post('/', async () => 'unreachable')
  t.equal(await sendIncompleteBody(await listen(app), 'trickle'), 408)
  t.same((await disposed('trickle')).outcome, { ok: false, status: 'aborted' })
  t.same(created, ['trickle'])
})

t.test('a hijacked response keeps its resources until it is ended by hand', async (t) => {
  const { transaction, disposed, disposals } = trackedTransaction()
  const app = await appWith()
  const finish = deferred()
  app.get('/', async (_request, reply) => {
    reply.hijack()
    const tx = await transaction.get()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('first ')
    await finish.promise
    reply.raw.end(`last ${tx.id}`)
  })
  const port = await listen(app)
  const text = await new Promise<string>((resolve) => {
    http.get({ port, host: '127.0.0.1', headers: { 'x-id': 'hijacked' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
        if (body === 'first ') {
          t.equal(disposals.size, 0, 'still in use while the response is open')
          finish.resolve()
        }
      })
      res.on('end', () => resolve(body))
    })
  })
  t.equal(text, 'first last hijacked')
  t.same((await disposed('hijacked')).outcome, { ok: true, status: 'completed' })
})

t.test('a streamed (SSE) response keeps its resources until the stream ends or the client leaves', async (t) => {
  const { transaction, disposed, disposals } = trackedTransaction()
  const app = await appWith()
  const streams = new Map<string, PassThrough>()
  app.get('/events', async (_request, reply) => {
    const tx = await transaction.get()
    const stream = new PassThrough()
    streams.set(tx.id, stream)
    stream.write(`data: ${tx.id}\n\n`)
    reply.header('content-type', 'text/event-stream')
    return reply.send(stream)
  })
  const port = await listen(app)
  const open = (id: string): Promise<http.IncomingMessage> => new Promise((resolve) => {
    const client = http.get({ port, host: '127.0.0.1', path: '/events', headers: { 'x-id': id } }, (res) => {
      res.once('data', () => resolve(res))
    })
    client.on('error', () => {})
  })

  const ending = await open('ends')
  t.equal(disposals.size, 0, 'the stream is open: nothing disposed')
  const ended = new Promise((resolve) => ending.on('end', resolve).resume())
  streams.get('ends')!.end('data: bye\n\n')
  await ended
  t.same((await disposed('ends')).outcome, { ok: true, status: 'completed' })

  const leaving = await open('leaves')
  t.equal(disposals.has('leaves'), false)
  leaving.destroy()
  t.same((await disposed('leaves')).outcome, { ok: false, status: 'aborted' })
})

t.test('a failing dispose is logged through request.log and does not touch the response', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const logged = deferred()
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()))
      logged.resolve()
      callback()
    }
  })
  const app = await appWith({ logger: { level: 'error', stream } })
  const order: string[] = []
  const first = defineRequestResource({ name: 'first', create: () => 1, dispose: () => { order.push('first') } })
  const broken = defineRequestResource({ name: 'broken', create: () => 2, dispose: () => { order.push('broken'); throw new Error('COMMIT failed') } })
  app.get('/', async () => {
    await first.get()
    await broken.get()
    return 'sent'
  })
  const port = await listen(app)
  const res = await send({ port, headers: { 'x-id': 'broken' } })
  t.equal(res.text, 'sent')
  await logged.promise
  t.same(order, ['broken', 'first'], 'the other resource was still disposed')
  t.match(lines, [{
    level: 50,
    reqId: String,
    msg: /Disposing the request resource "broken" failed: COMMIT failed/,
    err: { type: 'RequestLocalsError', code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' }
  }])
  t.equal((await send({ port, headers: { 'x-id': 'next' } })).text, 'sent', 'the server keeps serving')
})

t.test('a broken logger falls back to a process warning', async (t) => {
  const app = await appWith()
  app.addHook('onRequest', async (request) => {
    request.log = Object.assign(Object.create(request.log), { error () { throw new Error('logger down') } })
  })
  const resource = defineRequestResource({ name: 'logged', create: () => 1, dispose: () => { throw new Error('dispose failed') } })
  app.get('/', async () => { await resource.get(); return 'ok' })
  const warned = new Promise<Error>((resolve) => process.once('warning', resolve))
  t.equal((await app.inject('/')).body, 'ok')
  t.match(await warned, { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', message: /"logged" failed: dispose failed/ })
})

t.test('get() once the response is complete (onResponse) is refused', async (t) => {
  const { transaction, created, disposed } = trackedTransaction()
  const app = await appWith()
  const refused = new Map<string, unknown>()
  const done = deferred()
  app.addHook('onResponse', async (request) => {
    refused.set(request.locals.seen!, await transaction.get().catch((err: unknown) => err))
    if (refused.size === 2) done.resolve()
  })
  app.get('/used', async () => { await transaction.get(); return 'ok' })
  app.get('/unused', async () => 'ok')
  const port = await listen(app)
  await send({ port, path: '/used', headers: { 'x-id': 'used' } })
  await send({ port, path: '/unused', headers: { 'x-id': 'unused' } })
  await done.promise
  t.match(refused.get('used'), { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
  t.match(refused.get('unused'), { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
  t.same(created, ['used'])
  t.same((await disposed('used')).outcome, { ok: true, status: 'completed' })
})
