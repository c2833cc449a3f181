import t from 'tap'
import http from 'node:http'
import { inspect } from 'node:util'
import Fastify from 'fastify'
import express5, { type NextFunction, type Request, type Response } from 'express'
import fastifyRequestLocals from '../../src/fastify.js'
import { expressRequestLocals } from '../../src/express.js'
import { requestLocal, runWithLocals, tryGetLocals } from '../../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// Hostile inputs: whatever a client sends or application code probes, the
// outcome is documented (RELIABILITY.md), never a crash, never another
// request's data. Hostile request ids are in test/headers/request-id/.

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
