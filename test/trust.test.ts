import t from 'tap'
import http, { type IncomingMessage } from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import { expressRequestLocals } from '../src/express.js'
import { withRequestLocals } from '../src/http.js'
import fastifyRequestLocals from '../src/fastify.js'
import { requestId, requestLocal, tryGetLocals } from '../src/index.js'
import { portOf, send } from './helpers/http.js'
import './helpers/locals.js'

// Nothing a client sends sets identity or overrides what the application
// set for the request: the precedence rules of the 1.0 options.

async function listen (server: http.Server): Promise<number> {
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
}

t.test('Express: baggage never replaces a value set by middleware mounted earlier', async (t) => {
  const app = express()
  // e.g. a tenant taken from a verified credential, before the scope opens
  app.use((_req, res, next) => { res.locals.tenant = 'verified'; next() })
  app.use(expressRequestLocals({ upstream: { trust: true, baggage: { keys: ['tenant', 'seen'] } } }))
  app.get('/', (_req, res) => { res.json({ tenant: requestLocal.tenant, seen: requestLocal.seen ?? null }) })
  const port = await listen(http.createServer(app))
  t.same((await send({ port, headers: { baggage: 'tenant=evil,seen=yes' } })).json(), { tenant: 'verified', seen: 'yes' }, 'the set value stays; an unset one is filled')
})

t.test('Express: only own keys of an earlier res.locals; a client\'s __proto__ never becomes a prototype', async (t) => {
  const proto = Object.prototype as Record<string, unknown>
  const app = express()
  app.use((req, res, next) => {
    if (req.headers['x-case'] === 'plain') res.locals = { tenant: 'kept' } as never
    // A client body merged into res.locals before the scope opens.
    if (req.headers['x-case'] === 'assign-before') Object.assign(res.locals, JSON.parse('{"__proto__":{"isAdmin":true},"tenant":"t"}'))
    next()
  })
  app.use(expressRequestLocals())
  app.use(express.json())
  app.post('/', (req, res) => {
    // ... and after it, into the store itself.
    Object.assign(res.locals, req.body)
    const copy = JSON.parse(JSON.stringify(requestLocal)) as Record<string, unknown>
    const viaToJSON = (requestLocal as unknown as { toJSON: () => object }).toJSON()
    res.json({
      keys: Object.keys(requestLocal),
      json: copy,
      protoIsObject: Object.getPrototypeOf(viaToJSON) === Object.prototype,
      isAdmin: (viaToJSON as { isAdmin?: unknown }).isAdmin ?? null,
      spreadKeys: Object.keys({ ...requestLocal }),
      hasProto: '__proto__' in requestLocal
    })
  })
  app.get('/', (_req, res) => { res.json({ keys: Object.keys(requestLocal), polluted: (tryGetLocals() as Record<string, unknown> | undefined)?.polluted ?? null }) })
  const port = await listen(http.createServer(app))

  proto.polluted = 'from Object.prototype'
  try {
    const plain = await send({ port, headers: { 'x-case': 'plain' } })
    t.same(plain.json(), { keys: ['tenant'], polluted: null }, 'an inherited key of res.locals is not copied')
  } finally {
    delete proto.polluted
  }
  const body = JSON.stringify({ note: 'n', __proto__: { isAdmin: true } }).replace('"note"', '"__proto__":{"isAdmin":true},"note"')
  for (const [name, headers] of [['after', {}], ['before', { 'x-case': 'assign-before' }]] as const) {
    const res = await send({ port, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
    const seen = res.json<{ keys: string[], json: Record<string, unknown>, protoIsObject: boolean, isAdmin: unknown, spreadKeys: string[], hasProto: boolean }>()
    t.notOk(seen.keys.includes('__proto__'), `${name}: Object.keys(requestLocal) leaves __proto__ out`)
    t.notOk(seen.spreadKeys.includes('__proto__'), `${name}: so does a spread`)
    t.notOk(Object.hasOwn(seen.json, '__proto__'), `${name}: JSON.stringify(requestLocal) leaves it out`)
    t.equal(seen.protoIsObject, true, `${name}: toJSON's copy keeps Object.prototype`)
    t.equal(seen.isAdmin, null, `${name}: no client value is inherited`)
    t.equal(seen.hasProto, false)
  }
})

t.test('requestId.generate(req) gets the incoming request on every adapter', async (t) => {
  const generate = (req: IncomingMessage): string => `shard-${String(req.headers['x-shard'])}-${req.url === '/' ? 'root' : 'other'}`
  const fastify = Fastify()
  t.teardown(() => fastify.close())
  await fastify.register(fastifyRequestLocals, { requestId: { generate } })
  fastify.get('/', async () => ({ id: requestId() }))
  t.same((await fastify.inject({ url: '/', headers: { 'x-shard': '7' } })).json(), { id: 'shard-7-root' }, 'Fastify: the raw request')

  const app = express()
  app.use(expressRequestLocals({ requestId: { generate: (req) => `${generate(req)}-${req.get('x-shard') ?? ''}` } }))
  app.get('/', (_req, res) => { res.json({ id: requestId() }) })
  t.same((await send({ port: await listen(http.createServer(app)), headers: { 'x-shard': '3' } })).json(), { id: 'shard-3-root-3' }, 'Express: the Express request')

  const server = http.createServer(withRequestLocals((_req, res) => { res.end(JSON.stringify({ id: requestId() })) }, { requestId: { generate } }))
  t.same((await send({ port: await listen(server), headers: { 'x-shard': '5' } })).json(), { id: 'shard-5-root' }, 'node:http')
})

t.test('without upstream.trust, a client never chooses its request id', async (t) => {
  const server = http.createServer(withRequestLocals((_req, res) => { res.end(JSON.stringify({ id: requestId() })) }, { requestId: { echoHeader: true } }))
  const port = await listen(server)
  const res = await send({ port, headers: { 'x-request-id': 'chosen-by-client' } })
  t.not(res.json<{ id: string }>().id, 'chosen-by-client')
  t.equal(res.headers['x-request-id'], res.json<{ id: string }>().id, 'the echoed id is the service\'s own')
})
