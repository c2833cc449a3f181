import t from 'tap'
import http from 'node:http'
import { withRequestLocals } from '../../../src/http.js'
import { resolveRequestId } from '../../../src/headers/request-id.js'
import { parseTraceparent } from '../../../src/headers/trace-context.js'
import { requestId, runWithLocals, traceId } from '../../../src/index.js'
import { send } from '../../helpers/http.js'
import { listen, nodeAdapters, reply, type Route } from '../../helpers/node-adapters.js'
import { fastifyWith, policyOf, TRACE_ID, UUID, validTraceparent } from './shared.js'

// What a request continues from the service that called it (`upstream`):
// its id, its trace and its baggage, only with `upstream.trust`, since any
// client can send these headers. A request that continues no trace may
// start one (`startTrace`).

t.test('without upstream.trust, incoming ids are never taken nor reported', async (t) => {
  for (const policy of [policyOf({ requestId: {} }), policyOf({ upstream: { trust: false } })]) {
    const result = resolveRequestId(policy, ['x-request-id', 'abc', 'x-request-id', 'EVIL\r\n'])
    t.match(result.id, UUID)
    t.equal(result.rejected, undefined)
  }
  const policy = policyOf({ upstream: { trust: false, requestIdHeader: 'x-request-id' } })
  const result = resolveRequestId(policy, ['x-request-id', 'abc', 'x-request-id', 'EVIL\r\n'])
  t.match(result.id, UUID)
  t.equal(result.rejected, undefined)
})

t.test('a custom header name matches case-insensitively', async (t) => {
  const policy = policyOf({ upstream: { trust: true, requestIdHeader: 'X-Correlation-Id' } })
  t.equal(policy.header, 'x-correlation-id')
  t.equal(resolveRequestId(policy, ['x-CORRELATION-id', 'corr-1']).id, 'corr-1')
  t.match(resolveRequestId(policy, ['x-request-id', 'corr-1']).id, UUID, 'the default name is not read')
})

t.test('traceparent: the trace id of a valid header, nothing for an invalid one', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    [validTraceparent, TRACE_ID],
    ['01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future', TRACE_ID],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', undefined],
    ['00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', undefined],
    ['ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', undefined],
    ['00-00000000000000000000000000000000-00f067aa0ba902b7-01', undefined],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', undefined],
    ['00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', undefined],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: 1', undefined],
    ['', undefined],
    ['garbage', undefined]
  ]
  for (const [value, expected] of cases) t.equal(parseTraceparent(value)?.traceId, expected, JSON.stringify(value))
  t.same(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'), { traceId: TRACE_ID, flags: '00' }, 'the flags are kept')

  const policy = policyOf({ upstream: { trust: true } })
  t.same(resolveRequestId(policy, ['Traceparent', validTraceparent]).trace, { traceId: TRACE_ID, flags: '01' })
  t.equal(resolveRequestId(policy, ['traceparent', validTraceparent, 'traceparent', validTraceparent]).trace, undefined, 'two traceparent headers are ignored')
  t.equal(resolveRequestId(policyOf({ requestId: {} }), ['traceparent', validTraceparent]).trace, undefined, 'not continued by default (an untrusted edge)')
  t.equal(resolveRequestId(policyOf({ upstream: { trust: true, traceparent: false } }), ['traceparent', validTraceparent]).trace, undefined, 'traceparent: false')
})

t.test('startTrace: a request that continues no trace starts one', async (t) => {
  const edge = policyOf({ startTrace: true })
  const first = resolveRequestId(edge, ['traceparent', validTraceparent]).trace
  const second = resolveRequestId(edge, []).trace
  t.match(first, { traceId: /^[0-9a-f]{32}$/, flags: '01' })
  t.not(first?.traceId, TRACE_ID, 'an untrusted edge does not continue the client\'s trace')
  t.not(first?.traceId, second?.traceId, 'a trace per request')
  const trusted = policyOf({ upstream: { trust: true }, startTrace: true })
  t.equal(resolveRequestId(trusted, ['traceparent', validTraceparent]).trace?.traceId, TRACE_ID, 'a continued trace wins')
  t.match(resolveRequestId(trusted, ['traceparent', 'garbage']).trace, { traceId: /^[0-9a-f]{32}$/, flags: '01' }, 'an invalid one is replaced by a new trace')
})

t.test('baggage from a trusted upstream: several headers are one list', async (t) => {
  const policy = policyOf({ upstream: { trust: true, baggage: { keys: ['tenant', 'seen'] } } })
  t.same(resolveRequestId(policy, ['baggage', 'tenant=acme', 'Baggage', 'seen=yes,tenant=second']).baggage, { tenant: 'acme', seen: 'yes' })
  t.equal(resolveRequestId(policy, ['x-other', 'tenant=acme']).baggage, undefined, 'no header, no baggage')
  t.equal(resolveRequestId(policyOf({ upstream: { trust: true } }), ['baggage', 'tenant=acme']).baggage, undefined, 'without the baggage option, none is read')
})

t.test('Fastify: an untrusted edge (upstream.trust false) continues no incoming trace and no incoming id', async (t) => {
  const { app } = await fastifyWith(t, { upstream: { trust: false } })
  const res = await app.inject({ url: '/', headers: { traceparent: validTraceparent, 'x-request-id': 'chosen-by-client' } })
  t.equal(res.json().traceId, undefined)
  t.match(res.json().requestId, UUID, 'the client does not choose its request id')
})

t.test('Fastify: traceId() carries a valid traceparent\'s trace id, never an invalid one', async (t) => {
  const { app } = await fastifyWith(t, { upstream: { trust: true } })
  app.get('/nested', async () => runWithLocals({}, () => ({ traceId: traceId(), requestId: requestId() })))
  t.equal((await app.inject({ url: '/', headers: { traceparent: validTraceparent } })).json().traceId, TRACE_ID)
  const nested = await app.inject({ url: '/nested', headers: { traceparent: validTraceparent } })
  t.match(nested.json(), { traceId: TRACE_ID, requestId: UUID }, 'a scope nested in the request keeps its trace id')
  t.equal((await app.inject({ url: '/', headers: { traceparent: validTraceparent.toUpperCase() } })).json().traceId, undefined)
  t.equal((await app.inject({ url: '/', headers: { traceparent: [validTraceparent, validTraceparent] } })).json().traceId, undefined)
})

t.test('node:http: without upstream.trust, a client never chooses its request id', async (t) => {
  const server = http.createServer(withRequestLocals((_req, res) => { res.end(JSON.stringify({ id: requestId() })) }, { requestId: { echoHeader: true } }))
  const port = await listen(t, server)
  const res = await send({ port, headers: { 'x-request-id': 'chosen-by-client' } })
  t.not(res.json<{ id: string }>().id, 'chosen-by-client')
  t.equal(res.headers['x-request-id'], res.json<{ id: string }>().id, 'the echoed id is the service\'s own')
})

for (const adapter of nodeAdapters) {
  t.test(`${adapter.name}: a trace is continued from a trusted upstream only, and only a valid one`, async (t) => {
    const route: Route = (_req, res) => reply(res, { traceId: traceId() ?? null })
    const untrusted = await adapter.start(t, route, { upstream: { trust: false } })
    t.equal((await send({ port: untrusted, headers: { traceparent: validTraceparent } })).json<{ traceId: null }>().traceId, null, 'an untrusted edge continues no trace')
    const port = await adapter.start(t, route, { upstream: { trust: true } })
    const traced = await send({ port, headers: { traceparent: validTraceparent } })
    t.equal(traced.json<{ traceId: string }>().traceId, TRACE_ID, 'a valid traceparent gives the trace id')
    t.equal((await send({ port, headers: { traceparent: 'garbage' } })).json<{ traceId: null }>().traceId, null, 'an invalid one is ignored')
  })
}
