import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { inspect } from 'node:util'
import Fastify from 'fastify'
import express5, { type NextFunction, type Request, type Response } from 'express'
import fastifyRequestLocals from '../../src/fastify.js'
import { expressRequestLocals } from '../../src/express.js'
import { requestId, requestLocal, runWithLocals, tryGetLocals } from '../../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// Hostile inputs: whatever a client sends or application code probes, the
// outcome is documented (RELIABILITY.md), never a crash, never another
// request's data, never a raw echo of what the client sent.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

// What Node's HTTP parser makes of request-id values sent as raw bytes (the
// ones its client refuses to send). `status` 400/431: Node answers before
// any hook or middleware runs. 200: the application runs, and `id` is the
// request id it gets: the accepted value, or 'uuid' for a replaced one.
const rawWire: Array<{ name: string, value: string, encoding?: BufferEncoding, status: number, id?: string }> = [
  { name: 'CR/LF: ends the header line; the rest is another header', value: 'EVIL\r\nX-Injected: 1', status: 200, id: 'EVIL' },
  { name: 'obs-fold (CR/LF then a space)', value: 'EVIL\r\n folded', status: 400 },
  { name: 'a bare LF forging a log line', value: 'EVIL\n{"level":50,"msg":"forged"}', status: 400 },
  { name: 'a bare CR', value: 'EVIL\rX', status: 400 },
  { name: 'NUL', value: 'EVIL\u0000', status: 400 },
  { name: 'ESC (terminal escapes)', value: 'EVIL\u001b[31mred', status: 400 },
  { name: 'DEL', value: 'EVIL\u007f', status: 400 },
  { name: 'tab', value: 'EVIL\tid', status: 200, id: 'uuid' },
  { name: 'a latin1 byte', value: 'EVIL\u00e9', encoding: 'latin1', status: 200, id: 'uuid' },
  { name: 'UTF-8 bytes', value: 'EVILé', encoding: 'utf8', status: 200, id: 'uuid' },
  { name: '8 KB', value: 'c'.repeat(8192), status: 200, id: 'uuid' },
  { name: '20 KB (over Node\'s 16 KB header limit)', value: 'c'.repeat(20_000), status: 431 }
]

/** Sends one request as raw bytes on a new connection; resolves with what came back. */
function rawRequest (port: number, value: string, encoding: BufferEncoding = 'latin1'): Promise<{ status: number, head: string, body: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1')
      const split = text.indexOf('\r\n\r\n')
      resolve({ status: Number(text.split(' ')[1]), head: text.slice(0, split), body: text.slice(split + 4) })
    })
    socket.write(Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nx-request-id: ${value}\r\nConnection: close\r\n\r\n`, encoding))
  })
}

interface Server { name: string, port: number, ran: () => number }

async function servers (t: Test): Promise<Server[]> {
  const fastify = Fastify()
  await fastify.register(fastifyRequestLocals, { requestId: { header: true, echoHeader: true } })
  let fastifyRan = 0
  fastify.addHook('onRequest', async () => { fastifyRan++ })
  fastify.get('/', async () => ({ id: requestId(), seen: requestLocal.seen ?? null }))
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => fastify.close())

  const app = express5()
  let expressRan = 0
  app.use(expressRequestLocals({ requestId: { header: true, echoHeader: true } }))
  app.use((_req, _res, next) => { expressRan++; next() })
  app.get('/', (_req, res) => { res.json({ id: requestId(), seen: requestLocal.seen ?? null }) })
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return [
    { name: 'Fastify', port: portOf(fastify.server), ran: () => fastifyRan },
    { name: 'Express', port: portOf(server), ran: () => expressRan }
  ]
}

t.test('request ids sent as raw bytes: Node\'s parser refuses the dangerous ones before any hook; the rest are accepted only when safe; nothing is echoed raw', async (t) => {
  for (const server of await servers(t)) {
    for (const { name, value, encoding, status, id } of rawWire) {
      const label = `${server.name}, ${name}`
      const before = server.ran()
      const res = await rawRequest(server.port, value, encoding)
      t.equal(res.status, status, `${label}: ${status}`)
      const wire = Buffer.from(value, encoding ?? 'latin1').toString('latin1')
      t.notOk(res.head.includes(wire) || res.body.includes(wire), `${label}: the raw value is not echoed`)
      t.notOk(/x-injected/i.test(res.head), `${label}: no header was injected into the response`)
      if (status !== 200) {
        t.equal(server.ran(), before, `${label}: no hook or middleware ran`)
      } else {
        const body = JSON.parse(res.body) as { id: string, seen: null }
        const echoed = /\r\nx-request-id: ([^\r]*)/i.exec(res.head)?.[1]
        if (id === 'uuid') t.match(body.id, UUID, `${label}: replaced by a UUID`)
        else t.equal(body.id, id, `${label}: accepted as ${id}`)
        t.equal(echoed, body.id, `${label}: the echoed id is the validated one`)
      }
      // The server is unharmed: the next request is served with its own id.
      const next = await send({ port: server.port, headers: { 'x-request-id': `next-${server.name}` } })
      t.same(next.json(), { id: `next-${server.name}`, seen: null }, `${label}: the next request is served`)
    }
  }
})

t.test('probing requestLocal inside concurrent requests (await, spread, keys, JSON, inspect, return it as the body) shows only the request\'s own values', async (t) => {
  const count = 40
  const barrier = new Barrier(count)
  const app = Fastify()
  await app.register(fastifyRequestLocals, { defaults: (request) => ({ seen: String(request.headers['x-id']) }) })
  t.teardown(() => app.close())
  app.addHook('onRequest', async (request) => {
    requestLocal.user = { id: `user-${String(request.headers['x-id'])}` }
    await barrier.arrive()
  })
  app.get('/probe', async () => {
    const awaited = await requestLocal
    await new Promise((resolve) => setImmediate(resolve))
    return {
      awaitedIsProxy: awaited === requestLocal,
      thenType: typeof (requestLocal as { then?: unknown }).then,
      keys: Object.keys(requestLocal),
      spread: { ...requestLocal },
      json: JSON.parse(JSON.stringify(requestLocal)),
      inspected: inspect(requestLocal),
      has: 'user' in requestLocal
    }
  })
  // The proxy itself as the response body: serialised by Fastify, in scope.
  app.get('/body', async () => requestLocal)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = portOf(app.server)
  const agent = keepAliveAgent(count)
  t.teardown(() => agent.destroy())
  const results = await Promise.all(Array.from({ length: count }, (_, i) =>
    send({ port, agent, path: i % 2 === 0 ? '/probe' : '/body', headers: { 'x-id': `r${i}` } })))
  const wrong = results.flatMap((res, i) => {
    const own = { seen: `r${i}`, user: { id: `user-r${i}` } }
    const expected = i % 2 === 0
      ? { awaitedIsProxy: true, thenType: 'undefined', keys: ['seen', 'user'], spread: own, json: own, inspected: `requestLocal ${inspect(own)}`, has: true }
      : own
    return JSON.stringify(res.json()) === JSON.stringify(expected) ? [] : [{ i, got: res.json() }]
  })
  t.same(wrong, [], 'every probe saw its own request\'s values and nothing else')
})

t.test('writes of __proto__, constructor, prototype, then (and toJSON) inside a request fail that request with ERR_REQUEST_LOCALS_RESERVED_KEY; nothing is polluted, the next request is served', async (t) => {
  const app = express5()
  app.use(expressRequestLocals({ defaults: (req) => ({ seen: String(req.headers['x-id']) }) }))
  app.get('/write/:key', (req, res) => {
    // A parsed body or query is where such keys come from in practice.
    Object.assign(requestLocal, JSON.parse(`{"${req.params.key}": {"polluted": true}}`))
    res.json({ wrote: true })
  })
  app.get('/', (_req, res) => { res.json({ seen: requestLocal.seen, keys: Object.keys(requestLocal) }) })
  app.use((err: { code?: string }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ code: err.code, seen: requestLocal.seen })
  })
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = portOf(server)
  const agent = keepAliveAgent(1)
  t.teardown(() => agent.destroy())
  for (const key of ['__proto__', 'constructor', 'prototype', 'then', 'toJSON']) {
    const res = await send({ port, agent, path: `/write/${key}`, headers: { 'x-id': key } })
    t.same({ status: res.status, body: res.json() }, { status: 500, body: { code: 'ERR_REQUEST_LOCALS_RESERVED_KEY', seen: key } }, `${key}: refused`)
    t.same((await send({ port, agent, headers: { 'x-id': `after-${key}` } })).json(), { seen: `after-${key}`, keys: ['seen'] }, `after ${key}: the next request is served, its store untouched`)
  }
  t.equal(({} as { polluted?: boolean }).polluted, undefined, 'Object.prototype is not polluted')
  t.equal(typeof (requestLocal as { then?: unknown }).then, 'undefined', 'the proxy is still not a thenable')
})

// Recursion that reads requestLocal at every level until the stack overflows.
function recurseReading (depth: number): number {
  if (requestLocal.seen === undefined) throw new Error('lost the scope')
  return recurseReading(depth + 1) + 1
}

t.test('deep recursion inside a scope: a stack overflow fails that request alone (500 in its own scope); deep async recursion keeps the scope', async (t) => {
  const app = Fastify()
  await app.register(fastifyRequestLocals, { defaults: (request) => ({ seen: String(request.headers['x-id']) }) })
  t.teardown(() => app.close())
  app.get('/overflow', async () => recurseReading(0))
  app.get('/deep-async', async () => {
    // 2,000 awaits deep, each level reading the locals after the await.
    async function down (depth: number): Promise<string[]> {
      if (depth === 0) return []
      await (depth % 100 === 0 ? new Promise((resolve) => setImmediate(resolve)) : Promise.resolve())
      const below = await down(depth - 1)
      if (below.length === 0 || below[below.length - 1] !== requestLocal.seen) below.push(requestLocal.seen!)
      return below
    }
    return { seen: await down(2000) }
  })
  app.get('/', async () => ({ seen: requestLocal.seen }))
  app.setErrorHandler(async (err, _request, reply) => reply.code(500).send({ name: (err as Error).name, seen: requestLocal.seen }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = portOf(app.server)
  const agent = keepAliveAgent(8)
  t.teardown(() => agent.destroy())

  const overflow = await send({ port, agent, path: '/overflow', headers: { 'x-id': 'overflow' } })
  t.same({ status: overflow.status, body: overflow.json() }, { status: 500, body: { name: 'RangeError', seen: 'overflow' } }, 'a RangeError, handled in its own scope')
  t.same((await send({ port, agent, headers: { 'x-id': 'after' } })).json(), { seen: 'after' }, 'the next request is served')

  const deep = await Promise.all(Array.from({ length: 4 }, (_, i) => send({ port, agent, path: '/deep-async', headers: { 'x-id': `deep-${i}` } })))
  t.same(deep.map((res) => res.json()), Array.from({ length: 4 }, (_, i) => ({ seen: [`deep-${i}`] })), 'every level of every concurrent request saw only its own locals')
})

t.test('nested runWithLocals until the stack overflows, at every depth: the enclosing scope is current again and unchanged', async (t) => {
  // Nests scopes until RangeError; `pad` shifts where in runWithLocals the
  // overflow strikes, so that it hits every step of opening a scope.
  function nest (level: number): never {
    return runWithLocals({ tenant: `level-${level}` }, () => nest(level + 1))
  }
  function padded (pad: number): unknown {
    if (pad > 0) return padded(pad - 1)
    try {
      return nest(0)
    } catch (err) {
      return err
    }
  }
  const wrong: string[] = []
  await runWithLocals({ tenant: 'outer', seen: 'outer' }, async () => {
    const outer = tryGetLocals()
    for (let pad = 0; pad < 40; pad++) {
      const err = padded(pad)
      if (!(err instanceof RangeError)) wrong.push(`pad ${pad}: ${String(err)}`)
      if (tryGetLocals() !== outer || requestLocal.tenant !== 'outer') wrong.push(`pad ${pad}: the current scope is ${inspect(tryGetLocals())}`)
      await Promise.resolve()
      if (tryGetLocals() !== outer) wrong.push(`pad ${pad}: after an await, the current scope is ${inspect(tryGetLocals())}`)
    }
  })
  t.same(wrong, [], 'every overflow unwound to the enclosing scope')
  t.equal(tryGetLocals(), undefined, 'and outside, no scope')
})
