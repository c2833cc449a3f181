import t from 'tap'
import http, { type IncomingMessage } from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../../src/fastify.js'
import { expressRequestLocals } from '../../../src/express.js'
import { withRequestLocals } from '../../../src/http.js'
import { resolveRequestId } from '../../../src/headers/request-id.js'
import { requestId, runWithLocals, traceId } from '../../../src/index.js'
import { send } from '../../helpers/http.js'
import { listen, nodeAdapters, reply } from '../../helpers/node-adapters.js'
import { fastifyWith, policyOf, UUID, validTraceparent } from './shared.js'

// The id of a request that continues none: a fresh UUID, or what
// requestId.generate makes; Fastify keeps its own ids unless asked; a
// runWithLocals scope gets one on first read.

t.test('an absent header gives a fresh UUID without a rejection', async (t) => {
  const accepting = policyOf({ upstream: { trust: true } })
  const first = resolveRequestId(accepting, ['Host', 'example'])
  const second = resolveRequestId(accepting, [])
  t.match(first, { rejected: undefined, trace: undefined, baggage: undefined })
  t.match(first.id, UUID)
  t.not(first.id, second.id)
})

t.test('generate makes the ids of requests that bring none; an unusable result becomes a UUID', async (t) => {
  const made = ['from-generator', 'not safe\r\n', 42 as unknown as string, '']
  const received: unknown[] = []
  const policy = policyOf({ upstream: { trust: true }, requestId: { generate: (req: unknown) => { received.push(req); return made.shift() as string } } })
  const request = { url: '/' }
  t.equal(resolveRequestId(policy, [], request).id, 'from-generator')
  t.equal(received[0], request, 'generate gets the incoming request')
  t.match(resolveRequestId(policy, ['x-request-id', 'EVIL id']), { id: UUID, rejected: 'invalid-characters' }, 'an unsafe generated id is not used')
  t.match(resolveRequestId(policy, []).id, UUID, 'nor a number')
  t.match(resolveRequestId(policy, []).id, UUID, 'nor an empty string')
  t.equal(resolveRequestId(policy, ['x-request-id', 'kept']).id, 'kept', 'an accepted incoming id wins')
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
  t.same((await send({ port: await listen(t, http.createServer(app)), headers: { 'x-shard': '3' } })).json(), { id: 'shard-3-root-3' }, 'Express: the Express request')

  const server = http.createServer(withRequestLocals((_req, res) => { res.end(JSON.stringify({ id: requestId() })) }, { requestId: { generate } }))
  t.same((await send({ port: await listen(t, server), headers: { 'x-shard': '5' } })).json(), { id: 'shard-5-root' }, 'node:http')
})

t.test('requestId() and traceId() outside and inside runWithLocals scopes', async (t) => {
  t.equal(requestId(), undefined, 'no id outside a scope')
  t.equal(traceId(), undefined)
  await runWithLocals({}, async () => {
    const id = requestId()
    t.match(id, UUID, 'a runWithLocals scope gets a UUID on first read')
    await Promise.resolve()
    t.equal(requestId(), id, 'and keeps it')
    t.equal(traceId(), undefined)
    runWithLocals({}, () => t.equal(requestId(), id, 'a nested scope shares it'))
  })
  runWithLocals({}, () => {
    // The parent has not read its id yet when the nested scope opens.
    const nested = runWithLocals({}, () => requestId())
    t.equal(requestId(), nested, 'a nested scope opened before the first read still shares the id')
  })
  const a = runWithLocals({}, () => requestId())
  const b = runWithLocals({}, () => requestId())
  t.not(a, b, 'separate scopes get separate ids')
})

for (const adapter of nodeAdapters) {
  t.test(`${adapter.name}: without the requestId option, a UUID per request; an incoming header is ignored`, async (t) => {
    const port = await adapter.start(t, (_req, res) => reply(res, { id: requestId(), again: requestId(), traceId: traceId() ?? null }), {})
    const plain = (await send({ port, headers: { 'x-request-id': 'from-client' } }))
    t.match(plain.json(), { id: UUID, traceId: null }, 'without the option: a UUID, the header ignored')
    t.equal(plain.json<{ id: string, again: string }>().again, plain.json<{ id: string }>().id, 'stable within the request')
    t.equal(plain.headers['x-request-id'], undefined, 'nothing echoed')
  })
}

t.test('Fastify: without the requestId option, request.id stays Fastify\'s and nothing is echoed', async (t) => {
  const { app } = await fastifyWith(t)
  const res = await app.inject({ url: '/', headers: { 'x-request-id': 'abc', traceparent: validTraceparent } })
  t.match(res.json(), { requestId: /^req-/, traceId: undefined })
  t.equal(res.json().requestId, res.json().fastifyId)
  t.equal(res.headers['x-request-id'], undefined)
})

t.test('Fastify: a numeric request.id (a custom genReqId, pino-http\'s req.id) is read as a string', async (t) => {
  const app = Fastify({ genReqId: () => 42 as unknown as string })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals)
  app.get('/', async () => ({ requestId: requestId() }))
  t.same((await app.inject('/')).json(), { requestId: '42' })
})

t.test('Fastify: requestId: {} gives UUIDs, ignores incoming ids, echoes nothing', async (t) => {
  const { app, lines } = await fastifyWith(t, { requestId: {} })
  const res = await app.inject({ url: '/', headers: { 'x-request-id': 'EVIL\r\n' } })
  t.match(res.json().requestId, UUID)
  t.equal(res.headers['x-request-id'], undefined)
  t.notOk(lines.some((line) => line.msg === 'request-locals: replaced the incoming request id'), 'an ignored header is not a replacement')
})

t.test('Fastify: a child context with its own id generator keeps it', async (t) => {
  const { app } = await fastifyWith(t, { upstream: { trust: true } })
  await app.register(async function child (scope) {
    scope.setGenReqId(() => 'from-child')
    scope.get('/child', async () => ({ requestId: requestId(), traceId: traceId() }))
  })
  const res = await app.inject({ url: '/child', headers: { traceparent: validTraceparent, 'x-request-id': 'EVIL id' } })
  t.same(res.json(), { requestId: 'from-child' })
})
