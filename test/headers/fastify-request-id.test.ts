import t, { type Test } from 'tap'
import http from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import fastifyRequestLocals, { type RequestIdOptions } from '../../src/fastify.js'
import { requestId, runWithLocals, traceId } from '../../src/index.js'
import { keepAliveAgent, portOf } from '../helpers/http.js'
import { captureLogs, type LogLine } from '../helpers/logs.js'
import { hostileHeaders } from '../helpers/hostile-headers.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const validTraceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

async function appWith (requestId?: RequestIdOptions): Promise<{ app: FastifyInstance, lines: LogLine[] }> {
  const { logger, lines } = captureLogs()
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger })
  await app.register(fastifyRequestLocals, requestId === undefined ? {} : { requestId })
  app.get('/', async (request) => ({ requestId: requestId_(), fastifyId: request.id, traceId: traceId() }))
  t.teardown(() => app.close())
  return { app, lines }
}
// The route reads the id the way service code does, through the core.
const requestId_ = requestId

interface Seen { requestId: string, fastifyId: string, traceId?: string }

function checkOutcome (t: Test, name: string, values: string[], rejected: string | undefined, seen: Seen, echoed: unknown, lines: LogLine[]): void {
  t.equal(seen.requestId, seen.fastifyId, `${name}: requestId() is request.id`)
  t.equal(echoed, seen.requestId, `${name}: the echoed header is the id in use`)
  const replaced = lines.filter((line) => line.msg === 'request-locals: replaced the incoming request id')
  if (rejected === undefined) {
    t.equal(seen.requestId, values[0], `${name}: accepted`)
    t.equal(replaced.length, 0, `${name}: nothing logged about it`)
    return
  }
  t.match(seen.requestId, UUID, `${name}: replaced by a UUID`)
  t.same(replaced.map(({ level, reason, requestIdHeader, reqId }) => ({ level, reason, requestIdHeader, reqId })),
    [{ level: 20, reason: rejected, requestIdHeader: 'x-request-id', reqId: seen.requestId }], `${name}: replacement logged at debug with the reason`)
  const written = JSON.stringify(lines)
  for (const value of values) {
    if (value !== '') t.notOk(written.includes(JSON.stringify(value).slice(1, -1)), `${name}: the raw value is never logged`)
  }
}

t.test('the hostile header table, through inject', async (t) => {
  for (const { name, values, rejected } of hostileHeaders) {
    const { app, lines } = await appWith({ header: true, echoHeader: true })
    const res = await app.inject({ url: '/', headers: { 'x-request-id': values.length === 1 ? values[0] : values } })
    t.equal(res.statusCode, 200, name)
    checkOutcome(t, name, values, rejected, res.json(), res.headers['x-request-id'], lines)
  }
})

t.test('the hostile header table over real keep-alive sockets (every value an HTTP client can send)', async (t) => {
  const { app, lines } = await appWith({ header: true, echoHeader: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent(4)
  t.teardown(() => agent.destroy())
  const sendable = hostileHeaders.filter(({ values }) => values.every((value) => /^[\t\x20-\x7e\x80-\xff]*$/.test(value)))
  // All but CR/LF, NUL, ESC, DEL and non-latin1 characters, which Node's
  // client refuses to send (and its server's parser rejects before any hook).
  t.equal(sendable.length, 14, 'most of the table goes over the wire')
  for (const { name, values, rejected } of sendable) {
    lines.length = 0
    const { body, headers } = await new Promise<{ body: string, headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request({ port: portOf(app.server), host: '127.0.0.1', agent, headers: { 'x-request-id': values.length === 1 ? values[0] : values } }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { body += chunk })
        res.on('end', () => resolve({ body, headers: res.headers }))
      })
      req.on('error', reject)
      req.end()
    })
    checkOutcome(t, name, values, rejected, JSON.parse(body), headers['x-request-id'], lines)
  }
})

t.test('without the requestId option, request.id stays Fastify\'s and nothing is echoed', async (t) => {
  const { app } = await appWith()
  const res = await app.inject({ url: '/', headers: { 'x-request-id': 'abc', traceparent: validTraceparent } })
  t.match(res.json(), { requestId: /^req-/, traceId: undefined })
  t.equal(res.json().requestId, res.json().fastifyId)
  t.equal(res.headers['x-request-id'], undefined)
})

t.test('a numeric request.id (a custom genReqId, pino-http\'s req.id) is read as a string', async (t) => {
  const app = Fastify({ genReqId: () => 42 as unknown as string })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals)
  app.get('/', async () => ({ requestId: requestId() }))
  t.same((await app.inject('/')).json(), { requestId: '42' })
})

t.test('requestId: {} gives UUIDs, ignores incoming ids, echoes nothing', async (t) => {
  const { app, lines } = await appWith({})
  const res = await app.inject({ url: '/', headers: { 'x-request-id': 'EVIL\r\n' } })
  t.match(res.json().requestId, UUID)
  t.equal(res.headers['x-request-id'], undefined)
  t.notOk(lines.some((line) => line.msg === 'request-locals: replaced the incoming request id'), 'an ignored header is not a replacement')
})

t.test('a custom echo header, also on errors and 404s', async (t) => {
  const { app } = await appWith({ header: 'x-correlation-id', echoHeader: 'x-trace-ref' })
  app.get('/fail', async () => { throw new Error('boom') })
  const fail = await app.inject({ url: '/fail', headers: { 'x-correlation-id': 'corr-1' } })
  t.equal(fail.statusCode, 500)
  t.equal(fail.headers['x-trace-ref'], 'corr-1')
  const missing = await app.inject({ url: '/nowhere', headers: { 'x-correlation-id': 'corr-2' } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['x-trace-ref'], 'corr-2')
})

t.test('an untrusted edge (no trustUpstream, no traceparent: true) continues no incoming trace', async (t) => {
  const { app } = await appWith({ header: true })
  t.equal((await app.inject({ url: '/', headers: { traceparent: validTraceparent } })).json().traceId, undefined)
})

t.test('traceId() carries a valid traceparent\'s trace id, never an invalid one', async (t) => {
  const { app } = await appWith({ traceparent: true })
  app.get('/nested', async () => runWithLocals({}, () => ({ traceId: traceId(), requestId: requestId() })))
  t.equal((await app.inject({ url: '/', headers: { traceparent: validTraceparent } })).json().traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  const nested = await app.inject({ url: '/nested', headers: { traceparent: validTraceparent } })
  t.match(nested.json(), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', requestId: UUID }, 'a scope nested in the request keeps its trace id')
  t.equal((await app.inject({ url: '/', headers: { traceparent: validTraceparent.toUpperCase() } })).json().traceId, undefined)
  t.equal((await app.inject({ url: '/', headers: { traceparent: [validTraceparent, validTraceparent] } })).json().traceId, undefined)
})

t.test('a child context with its own id generator keeps it', async (t) => {
  const { app } = await appWith({ header: true })
  await app.register(async function child (scope) {
    scope.setGenReqId(() => 'from-child')
    scope.get('/child', async () => ({ requestId: requestId(), traceId: traceId() }))
  })
  const res = await app.inject({ url: '/child', headers: { traceparent: validTraceparent, 'x-request-id': 'EVIL id' } })
  t.same(res.json(), { requestId: 'from-child' })
})

t.test('Fastify\'s own requestIdHeader conflicts with the policy: registration fails', async (t) => {
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(fastifyRequestLocals, { requestId: { header: true } }) }, {
    code: 'ERR_REQUEST_LOCALS_OPTIONS',
    message: /conflicts with Fastify's own requestIdHeader option \(found "x-request-id"\), which accepts any raw header value.*Remove requestIdHeader from Fastify's options and pass \{ requestId: \{ header: "x-request-id" \} \}/
  })
})

t.test('bad requestId options fail registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(fastifyRequestLocals, { requestId: { header: 'bad name' } }) }, {
    code: 'ERR_REQUEST_LOCALS_OPTIONS',
    message: /^The request-locals plugin option `requestId`\.header must be a header name/
  })
})
