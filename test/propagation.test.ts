import t from 'tap'
import http from 'node:http'
import { channel } from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance } from 'fastify'
import * as undici from 'undici'
import fastifyRequestLocals from '../src/fastify.js'
import { propagateRequestLocals, propagationHeaders } from '../src/propagation.js'
import { requestId, runWithLocals } from '../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from './helpers/http.js'
import './helpers/locals.js'

// Service B of these tests: answers with the headers it received.
async function echoServer (): Promise<string> {
  const server = http.createServer((req, res) => { res.end(JSON.stringify(req.headers)) })
  t.teardown(() => server.close())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${portOf(server)}`
}

type Echoed = Record<string, string | undefined>
const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
const TRACEPARENT = /^00-4bf92f3577b34da6a3ce929d0e0e4736-([0-9a-f]{16})-01$/

async function echoedBy (client: string, url: string, headers?: Record<string, string>): Promise<Echoed> {
  if (client === 'undici.request') return await (await undici.request(url, { headers })).body.json() as Echoed
  if (client === 'undici.fetch') return await (await undici.fetch(url, { headers })).json() as Echoed
  return await (await fetch(url, { headers })).json() as Echoed
}

async function serviceA (echo: string): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { defaults: (request) => ({ tenant: String(request.headers['x-tenant'] ?? 'public') }), upstream: { trust: true } })
  app.get('/call', async (request) => {
    const { client = 'fetch' } = request.query as { client?: string }
    return { id: requestId(), echoed: await echoedBy(client, echo) }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: portOf(app.server) }
}

t.test('fetch and undici calls made in a request carry its id, trace and baggage; calls outside carry nothing', async (t) => {
  const echo = await echoServer()
  const { port } = await serviceA(echo)
  const stop = propagateRequestLocals({ baggage: ['tenant'] })
  t.teardown(stop)
  for (const client of ['fetch', 'undici.request', 'undici.fetch']) {
    const res = await send({ port, path: `/call?client=${client}`, headers: { 'x-request-id': 'req-from-edge', traceparent: incoming, 'x-tenant': 'acme corp' } })
    const { id, echoed } = res.json<{ id: string, echoed: Echoed }>()
    t.equal(id, 'req-from-edge', `${client}: A continued the trusted id`)
    t.equal(echoed['x-request-id'], 'req-from-edge', `${client}: B got the request id`)
    t.match(echoed.traceparent, TRACEPARENT, `${client}: B got the trace, with the flags kept`)
    t.not(TRACEPARENT.exec(echoed.traceparent as string)?.[1], '00f067aa0ba902b7', `${client}: the parent is a new span id, not the caller's`)
    t.equal(echoed.baggage, 'tenant=acme%20corp', `${client}: B got the chosen locals as baggage`)

    const untraced = (await send({ port, path: `/call?client=${client}` })).json<{ id: string, echoed: Echoed }>()
    t.equal(untraced.echoed['x-request-id'], untraced.id, `${client}: a request without a trace sends its id`)
    t.equal(untraced.echoed.traceparent, undefined, `${client}: and no traceparent`)

    const outside = await echoedBy(client, echo)
    t.equal(outside['x-request-id'], undefined, `${client}: outside a request: no id`)
    t.equal(outside.traceparent, undefined)
    t.equal(outside.baggage, undefined)
  }
})

t.test('concurrent requests each send their own id and trace (released together by a barrier)', async (t) => {
  const echo = await echoServer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { upstream: { trust: true } })
  const count = 24
  const barrier = new Barrier(count)
  app.get('/call', async () => {
    await barrier.arrive()
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5))
    return { id: requestId(), echoed: await echoedBy(Math.random() < 0.5 ? 'fetch' : 'undici.request', echo) }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(propagateRequestLocals())
  // One socket per request: all of them must be in flight to pass the barrier.
  const agent = keepAliveAgent(count)
  t.teardown(() => agent.destroy())
  const traceIds = Array.from({ length: count }, (_, i) => i.toString(16).padStart(32, 'a'))
  const results = await Promise.all(traceIds.map((traceId, i) => send({
    port: portOf(app.server),
    agent,
    path: '/call',
    headers: { 'x-request-id': `req-${i}`, traceparent: `00-${traceId}-00f067aa0ba902b7-0${i % 2}` }
  })))
  const spans = new Set<string>()
  results.forEach((res, i) => {
    const { id, echoed } = res.json<{ id: string, echoed: Echoed }>()
    t.equal(id, `req-${i}`)
    t.equal(echoed['x-request-id'], `req-${i}`, `request ${i}: its own id`)
    const match = new RegExp(`^00-${traceIds[i]}-([0-9a-f]{16})-0${i % 2}$`).exec(echoed.traceparent as string)
    t.ok(match, `request ${i}: its own trace and flags`)
    spans.add(match?.[1] as string)
  })
  t.equal(spans.size, count, 'every call got a span id of its own')
})

t.test('a header the caller set is kept, never duplicated', async (t) => {
  const echo = await echoServer()
  t.teardown(propagateRequestLocals({ baggage: ['tenant'] }))
  const mine = { 'X-Request-Id': 'mine', traceparent: '00-11111111111111111111111111111111-2222222222222222-00', baggage: 'tenant=mine' }
  for (const client of ['fetch', 'undici.request', 'undici.fetch']) {
    const echoed = await runWithLocals({ tenant: 'acme' }, () => echoedBy(client, echo, mine))
    t.same([echoed['x-request-id'], echoed.traceparent, echoed.baggage], ['mine', mine.traceparent, 'tenant=mine'], client)
  }
})

t.test('runWithLocals scopes (jobs, scripts) send their id; origins limit where headers go', async (t) => {
  const echo = await echoServer()
  const stop = propagateRequestLocals({ origins: [echo + '/ignored-path'] })
  t.teardown(stop)
  await runWithLocals({}, async () => {
    t.equal((await echoedBy('fetch', echo))['x-request-id'], requestId(), 'a listed origin gets the id')
  })
  propagateRequestLocals({ origins: ['http://127.0.0.1:1'] })
  await runWithLocals({}, async () => {
    t.equal((await echoedBy('fetch', echo))['x-request-id'], undefined, 'calling it again replaced the options: an unlisted origin gets nothing')
  })
  stop()
  stop()
  propagateRequestLocals({ requestIdHeader: 'X-Correlation-Id' })
  await runWithLocals({}, async () => {
    const echoed = await echoedBy('fetch', echo)
    t.equal(echoed['x-correlation-id'], requestId(), 'a custom id header')
    t.equal(echoed['x-request-id'], undefined)
  })
  const off = propagateRequestLocals({ requestIdHeader: false })
  await runWithLocals({}, async () => {
    t.equal((await echoedBy('fetch', echo))['x-request-id'], undefined, 'requestIdHeader: false sends no id')
  })
  off()
  await runWithLocals({}, async () => {
    t.equal((await echoedBy('fetch', echo))['x-request-id'], undefined, 'once turned off, nothing is added')
  })
})

t.test('an id that is not safe as a header value is not sent', async (t) => {
  const echo = await echoServer()
  t.teardown(propagateRequestLocals())
  const app = Fastify({ genReqId: () => 'not a safe id\u00e9' })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals)
  app.get('/', async () => await echoedBy('fetch', echo))
  t.equal((await app.inject('/')).json()['x-request-id'], undefined)
})

t.test('undici versions whose request headers are one string are read too', async (t) => {
  t.teardown(propagateRequestLocals())
  const create = channel('undici:request:create')
  const added: string[] = []
  const request = (headers: string): object => ({ origin: 'http://b', headers, addHeader: (name: string) => { added.push(name) } })
  runWithLocals({}, () => {
    create.publish({ request: request('accept: */*\r\nX-Request-Id: mine\r\n') })
    create.publish({ request: request('accept: */*\r\n') })
  })
  t.same(added, ['x-request-id'], 'only the request without one gets it')
})

t.test('propagationHeaders() for other HTTP clients', async (t) => {
  t.same(propagationHeaders(), {}, 'outside a request: none')
  const echo = await echoServer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { defaults: { tenant: 'acme' }, upstream: { trust: true } })
  app.get('/', async () => {
    const headers = propagationHeaders({ baggage: ['tenant', 'user'] })
    const echoed = await new Promise<Echoed>((resolve, reject) => {
      http.get(echo, { headers }, (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => { text += chunk.toString() })
        res.on('end', () => resolve(JSON.parse(text)))
      }).on('error', reject)
    })
    return { headers, echoed }
  })
  const res = (await app.inject({ url: '/', headers: { 'x-request-id': 'r1', traceparent: incoming } })).json<{ headers: Echoed, echoed: Echoed }>()
  t.same(Object.keys(res.headers), ['x-request-id', 'traceparent', 'baggage'])
  t.match(res.headers, { 'x-request-id': 'r1', traceparent: TRACEPARENT, baggage: 'tenant=acme' })
  t.equal(res.echoed['x-request-id'], 'r1', 'http.request sent them')
  const plain = (await app.inject('/')).json<{ headers: Echoed }>()
  t.same(Object.keys(plain.headers), ['x-request-id', 'baggage'], 'no trace: no traceparent')
  runWithLocals({}, () => {
    t.same(Object.keys(propagationHeaders({ traceparent: false, requestIdHeader: 'x-corr' })), ['x-corr'])
  })
})

t.test('options are validated with messages that name the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /^propagateRequestLocals\(options\) must be a plain object; found null/],
    [{ origin: ['https://a'] }, /^propagateRequestLocals\(options\): found the unknown option `origin`; did you mean `origins`\?/],
    [{ requestIdHeader: 'x id' }, /^propagateRequestLocals\(options\)\.requestIdHeader must be a header name or false; found a string/],
    [{ requestIdHeader: true }, /requestIdHeader must be a header name or false; found a boolean/],
    [{ traceparent: 'yes' }, /\.traceparent must be true or false; found a string/],
    [{ baggage: 'tenant' }, /\.baggage must be an array of local names .*found a string/],
    [{ origins: 'http://a' }, /\.origins must be an array of origins such as 'https:\/\/api\.internal:8443'; found a string/],
    [{ origins: ['not a url'] }, /\.origins must be an array of origins .*found a string that is not a URL at index 0/],
    [{ origins: [1] }, /\.origins must be an array of origins/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => propagateRequestLocals(options as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
  }
  t.throws(() => propagationHeaders([] as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /^propagationHeaders\(options\) must be a plain object; found an array/ })
})
