import t, { type Test } from 'tap'
import http from 'node:http'
import { Readable } from 'node:stream'
import Fastify, { type FastifyHttpOptions } from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { requestLocal, tryGetLocals } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf, send, sendIncompleteBody } from '../helpers/http.js'
import { collectGarbage } from '../helpers/gc.js'
import { trackedResource } from '../helpers/tracked-resource.js'
import '../helpers/locals.js'

// Faults in a Fastify app: whatever fails, the failing request ends alone,
// its per-request resources are disposed exactly once with the right
// outcome, and the next requests (on the same keep-alive socket when the
// server keeps it) see their own data. The request id is `x-id`; every
// response body of a healthy request is `<own id>/<own resource's owner>`.

async function faultyApp (t: Test, options: FastifyHttpOptions<http.Server> = {}) {
  const tracked = trackedResource()
  const app = Fastify(options)
  await app.register(fastifyRequestLocals, { defaults: (request) => ({ seen: String(request.headers['x-id']) }) })
  // Every request holds a resource from its first hook on.
  app.addHook('onRequest', async () => { await tracked.resource.get() })
  let connections = 0
  app.server.on('connection', () => { connections++ })
  t.teardown(() => app.close())
  const listen = async (): Promise<number> => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    return portOf(app.server)
  }
  return { app, tracked, listen, connections: () => connections }
}

/** What a healthy request answers: its own id and its own resource's owner. */
async function ownData (resources: ReturnType<typeof trackedResource>): Promise<string> {
  const { owner } = await resources.resource.get()
  return `${requestLocal.seen!}/${owner}`
}

const stages = ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'handler', 'preSerialization', 'onSend', 'onResponse'] as const
type Stage = typeof stages[number]

t.test('a throw, sync or async, in every hook and the handler fails that request alone; the next one on the same socket is served', async (t) => {
  const { app, tracked: resources, listen, connections } = await faultyApp(t)
  const failure = (stage: Stage, request: { headers: http.IncomingHttpHeaders }): 'sync' | 'async' | undefined => {
    const [at, mode] = String(request.headers['x-fail']).split(':')
    return at === stage ? mode as 'sync' | 'async' : undefined
  }
  const boom = (stage: Stage, mode: string): Error => new Error(`${stage} ${mode} failure of ${requestLocal.seen!}`)
  // Sync: thrown where Fastify calls the hook. Async: an async hook that
  // rejects after an await (onRequest, the handler), or an error passed to
  // done() on a later turn of the loop (the other hooks).
  app.addHook('onRequest', (request, _reply, done) => { if (failure('onRequest', request) === 'sync') throw boom('onRequest', 'sync'); done() })
  app.addHook('onRequest', async (request) => { if (failure('onRequest', request) === 'async') { await Promise.resolve(); throw boom('onRequest', 'async') } })
  for (const stage of ['preParsing', 'preValidation', 'preHandler', 'onResponse'] as const) {
    app.addHook(stage, (request: { headers: http.IncomingHttpHeaders }, _reply: unknown, ...rest: unknown[]) => {
      const mode = failure(stage, request)
      const done = rest[rest.length - 1] as (err?: Error | null, value?: unknown) => void
      if (mode === 'sync') throw boom(stage, mode)
      if (mode === 'async') { setImmediate(() => done(boom(stage, mode))); return }
      if (stage === 'preParsing') done(null, rest[0])
      else done()
    })
  }
  for (const stage of ['preSerialization', 'onSend'] as const) {
    app.addHook(stage, (request: { headers: http.IncomingHttpHeaders }, _reply: unknown, payload: unknown, done: (err: Error | null, value?: unknown) => void) => {
      const mode = failure(stage, request)
      if (mode === 'sync') throw boom(stage, mode)
      if (mode === 'async') { setImmediate(() => done(boom(stage, mode))); return }
      done(null, payload)
    })
  }
  app.get('/', (request) => {
    const mode = failure('handler', request)
    if (mode === 'sync') throw boom('handler', mode)
    if (mode === 'async') return Promise.resolve().then(() => { throw boom('handler', mode) })
    // An object, so that preSerialization runs.
    return ownData(resources).then((data) => ({ data }))
  })
  const port = await listen()
  const agent = keepAliveAgent(1)
  t.teardown(() => agent.destroy())

  for (const stage of stages) {
    for (const mode of ['sync', 'async']) {
      const id = `${stage}-${mode}`
      const failed = await send({ port, agent, headers: { 'x-id': id, 'x-fail': `${stage}:${mode}` } })
      const probe = await send({ port, agent, headers: { 'x-id': `after-${id}` } })
      t.same({ status: probe.status, body: probe.json() }, { status: 200, body: { data: `after-${id}/after-${id}` } }, `${id}: the next request sees its own data`)
      const outcome = await resources.disposed(id)
      if (stage === 'onResponse') {
        // The response was complete before the hook ran: Fastify logs the error.
        t.equal(failed.status, 200, `${id}: answered before the hook failed`)
        t.match(outcome, { ok: true, status: 'completed' }, `${id}: completed`)
      } else {
        t.equal(failed.status, 500, `${id}: 500`)
        t.match(outcome, { ok: false, status: 'failed', error: { message: `${stage} ${mode} failure of ${id}` } }, `${id}: failed with its own error`)
      }
    }
  }
  await resources.drained()
  t.same(resources.unbalanced(), [], 'every instance disposed exactly once, none made twice')
  t.equal(resources.created.length, stages.length * 4, 'one instance per request')
  t.equal(connections(), 1, 'every request went over one keep-alive socket')
})

t.test('reply.send after the reply was sent, or after headers went out by hand: no crash, the next request is served', async (t) => {
  const { app, tracked: resources, listen } = await faultyApp(t, { logger: { level: 'silent' } })
  app.get('/twice', async (_request, reply) => {
    reply.send(await ownData(resources))
    // The classic mistake: a value returned after reply.send(). Fastify keeps the first.
    return 'second'
  })
  app.get('/raw-first', async (_request, reply) => {
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('partial ')
    return reply.send('late')
  })
  app.get('/late', (_request, reply) => {
    void reply.send(requestLocal.seen)
    setImmediate(() => { void reply.send('too late') })
  })
  app.get('/', async () => ownData(resources))
  const port = await listen()
  const agent = keepAliveAgent(1)
  t.teardown(() => agent.destroy())

  t.same(await send({ port, agent, path: '/twice', headers: { 'x-id': 'twice' } }).then(({ status, text }) => ({ status, text })), { status: 200, text: 'twice/twice' }, 'the first send wins')
  t.equal((await send({ port, agent, headers: { 'x-id': 'after-twice' } })).text, 'after-twice/after-twice')
  t.match(await resources.disposed('twice'), { status: 'completed' })

  // Headers already out: Fastify cannot write its own, fails the request
  // with ERR_HTTP_HEADERS_SENT and, unable to answer, closes the connection.
  const raw = await send({ port, agent, path: '/raw-first', headers: { 'x-id': 'raw-first' } }).catch((err: Error) => err)
  t.match(raw, { code: 'ECONNRESET', message: 'socket hang up' }, 'the half-sent response is cut off')
  t.match(await resources.disposed('raw-first'), { ok: false, status: 'failed', error: { code: 'ERR_HTTP_HEADERS_SENT' } })
  t.equal((await send({ port, agent, headers: { 'x-id': 'after-raw' } })).text, 'after-raw/after-raw', 'the next request is served on a new socket')

  t.equal((await send({ port, agent, path: '/late', headers: { 'x-id': 'late' } })).text, 'late')
  t.equal((await send({ port, agent, headers: { 'x-id': 'after-late' } })).text, 'after-late/after-late')
  t.match(await resources.disposed('late'), { status: 'completed' })
  await resources.drained()
  t.same(resources.unbalanced(), [])
})

/**
 * Starts a request that the client destroys once `when` resolves, or once
 * the first bytes of the response body arrive; resolves when its socket is gone.
 */
function abortWhen (port: number, id: string, when: Promise<unknown> | 'first-bytes', options: http.RequestOptions = {}, body?: string): Promise<void> {
  return new Promise((resolve) => {
    const client = http.request({ port, host: '127.0.0.1', ...options, headers: { 'x-id': id, ...options.headers } })
    client.on('error', () => {})
    client.on('close', () => resolve())
    client.on('response', (res) => {
      res.on('error', () => {})
      if (when === 'first-bytes') res.once('data', () => client.destroy())
    })
    if (body === undefined) client.end()
    else client.write(body)
    if (when !== 'first-bytes') void when.then(() => client.destroy())
  })
}

t.test('clients that leave mid-body, mid-response and from a hijacked response: aborted, disposed once, the next requests served', async (t) => {
  const { app, tracked: resources, listen } = await faultyApp(t)
  const parsing = deferred()
  const hijacked = deferred()
  const streams: Readable[] = []
  app.addHook('preParsing', async (request, _reply, payload) => {
    if (request.headers['x-id'] === 'mid-body') parsing.resolve()
    return payload
  })
  app.post('/', async () => ownData(resources))
  app.get('/stream', async () => {
    // A response that never ends by itself: the client goes away mid-way.
    const stream = new Readable({ read () {} })
    streams.push(stream)
    stream.push(`first chunk of ${requestLocal.seen!}\n`)
    return stream
  })
  app.get('/hijack', async (_request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    reply.raw.write(`data: ${requestLocal.seen!}\n\n`, () => hijacked.resolve())
  })
  app.get('/', async () => ownData(resources))
  const port = await listen()
  const agent = keepAliveAgent(1)
  t.teardown(() => agent.destroy())

  await abortWhen(port, 'mid-body', parsing.promise, { method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': '100' } }, 'half a body')
  await abortWhen(port, 'mid-response', 'first-bytes', { path: '/stream' })
  await abortWhen(port, 'hijacked', hijacked.promise, { path: '/hijack' })
  for (const id of ['mid-body', 'mid-response', 'hijacked']) {
    t.same(await resources.disposed(id), { ok: false, status: 'aborted' }, `${id}: aborted`)
    t.equal((await send({ port, agent, headers: { 'x-id': `after-${id}` } })).text, `after-${id}/after-${id}`, `after ${id}: the next request sees its own data`)
  }
  t.equal((await send({ port, agent, method: 'POST', headers: { 'x-id': 'post', 'content-type': 'text/plain' }, body: 'whole', chunks: 2 })).text, 'post/post')
  t.ok(streams.every((stream) => stream.destroyed), 'the abandoned stream was destroyed')
  await resources.drained()
  t.same(resources.unbalanced(), [])
})

t.test('connectionTimeout: the timed-out request is aborted and disposed once, even if it answers late; the next requests are served', async (t) => {
  const { app, tracked: resources, listen } = await faultyApp(t, { connectionTimeout: 100 })
  const timedOut = new Map([['stalled', deferred()], ['answers-late', deferred()]])
  app.addHook('onTimeout', async () => { timedOut.get(requestLocal.seen!)?.resolve() })
  app.get('/stall', async () => {
    const id = requestLocal.seen!
    await timedOut.get(id)!.promise
    // 'stalled' answers once its connection is gone; 'answers-late' at once,
    // on a connection already timed out: nobody receives either.
    if (id === 'stalled') await resources.disposed(id)
    return 'late'
  })
  app.get('/', async () => ownData(resources))
  const port = await listen()
  for (const id of timedOut.keys()) {
    const cut = await send({ port, path: '/stall', headers: { 'x-id': id } }).catch((err: Error) => err)
    t.match(cut, { code: 'ECONNRESET' }, `${id}: the idle socket is destroyed`)
    t.same(await resources.disposed(id), { ok: false, status: 'aborted' }, `${id}: aborted`)
    t.equal((await send({ port, headers: { 'x-id': `after-${id}` } })).text, `after-${id}/after-${id}`)
  }
  await resources.drained()
  t.same(resources.unbalanced(), [])
})

t.test('requestTimeout: a body that never completes gets 408, is aborted and disposed once; the next requests are served', async (t) => {
  const { app, tracked: resources, listen } = await faultyApp(t, { requestTimeout: 200, http: { headersTimeout: 200, connectionsCheckingInterval: 20 } })
  app.post('/', async () => ownData(resources))
  app.get('/', async () => ownData(resources))
  const port = await listen()
  const trickled = await sendIncompleteBody(port, 'trickled')
  t.equal(trickled, 408, 'Node answers 408')
  t.same(await resources.disposed('trickled'), { ok: false, status: 'aborted' })
  t.equal((await send({ port, headers: { 'x-id': 'after-trickle' } })).text, 'after-trickle/after-trickle')
  t.equal((await send({ port, method: 'POST', headers: { 'x-id': 'post', 'content-type': 'text/plain' }, body: 'whole' })).text, 'post/post')
  await resources.drained()
  t.same(resources.unbalanced(), [])
})

for (const force of ['idle', true] as const) {
  t.test(`app.close() with requests in flight (forceCloseConnections: ${String(force)}): ${force === true ? 'they are aborted' : 'they finish'}, each disposed once, no store kept`, async (t) => {
    const { app, tracked: resources, listen } = await faultyApp(t, { forceCloseConnections: force })
    const count = 4
    const arrived = Array.from({ length: count }, () => deferred())
    const release = deferred()
    const handled: string[] = []
    const stores: Array<WeakRef<object>> = []
    app.get('/', async (request) => {
      stores.push(new WeakRef(request.locals))
      arrived[Number(request.headers['x-n'])].resolve()
      await release.promise
      handled.push(await ownData(resources).catch((err: { code: string }) => err.code))
      return ownData(resources)
    })
    const port = await listen()
    const agent = keepAliveAgent(count)
    const responses = Array.from({ length: count }, (_, n) =>
      send({ port, agent, headers: { 'x-id': `in-flight-${n}`, 'x-n': String(n) } }).then(({ status, text }) => ({ status, text }), (err: { code: string }) => err.code))
    await Promise.all(arrived.map(({ promise }) => promise))
    const closed = app.close()
    while (app.server.listening) await new Promise((resolve) => setImmediate(resolve))
    t.match(await send({ port, headers: { 'x-id': 'refused' } }).catch((err: Error) => err), { code: 'ECONNREFUSED' }, 'no new connection is accepted')
    release.resolve()
    const ids = Array.from({ length: count }, (_, n) => `in-flight-${n}`)
    if (force === true) {
      t.same(await Promise.all(responses), ids.map(() => 'ECONNRESET'), 'the connections were cut')
      t.same((await Promise.all(ids.map((id) => resources.disposed(id)))).map(({ status }) => status), ids.map(() => 'aborted'))
      t.same(handled, ids.map(() => 'ERR_REQUEST_LOCALS_SCOPE_ENDED'), 'handlers still running after the cut cannot use the disposed resources')
    } else {
      t.same(await Promise.all(responses), ids.map((id) => ({ status: 200, text: `${id}/${id}` })), 'each finished with its own data')
      t.same((await Promise.all(ids.map((id) => resources.disposed(id)))).map(({ status }) => status), ids.map(() => 'completed'))
      t.same(handled.sort(), ids.map((id) => `${id}/${id}`))
    }
    // The client lets go of its kept-alive sockets, so that close() can finish.
    agent.destroy()
    await closed
    await resources.drained()
    t.same(resources.unbalanced(), [], 'each disposed exactly once')
    t.equal(tryGetLocals(), undefined, 'no store is left current')
    t.equal(await collectGarbage(stores), 0, 'every request store was garbage-collected')
  })
}
