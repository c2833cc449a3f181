import t from 'tap'
import http from 'node:http'
import { context, propagation, trace, type Span } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import express from 'express'
import fastifyRequestLocals from '../src/fastify.js'
import { expressRequestLocals } from '../src/express.js'
import { otelLogMixin, requestIdFromActiveSpan } from '../src/opentelemetry.js'
import { logMixin, requestLogger } from '../src/pino.js'
import { requestId } from '../src/index.js'
import { portOf, send } from './helpers/http.js'
import { captureLogs } from './helpers/logs.js'

// A real tracer with the context manager OpenTelemetry's Node SDK installs,
// so that spans really are active across awaits.
const contextManager = new AsyncLocalStorageContextManager().enable()
context.setGlobalContextManager(contextManager)
t.teardown(() => { context.disable() })
const tracer = new BasicTracerProvider().getTracer('request-locals-test')
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

// What OpenTelemetry's HTTP instrumentation does for a server: the request
// is handled inside an active server span.
function inServerSpan (handler: http.RequestListener, spans: Span[]): http.RequestListener {
  return (req, res) => tracer.startActiveSpan('GET', (span) => {
    spans.push(span)
    res.on('close', () => span.end())
    handler(req, res)
  })
}

t.test('otelLogMixin: the active span\'s ids on each line, nothing without one', async (t) => {
  const mixin = otelLogMixin()
  t.same(mixin(), {}, 'no active span')
  await tracer.startActiveSpan('work', async (span) => {
    await Promise.resolve()
    const { traceId, spanId } = span.spanContext()
    t.same(mixin(), { trace_id: traceId, span_id: spanId, trace_flags: '01' })
    t.same(otelLogMixin({ traceIdKey: 'traceId', spanIdKey: 'spanId', traceFlagsKey: 'flags' })(), { traceId, spanId, flags: '01' })
    span.end()
  })
  const invalid = trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 })
  context.with(trace.setSpan(context.active(), invalid), () => t.same(mixin(), {}, 'an invalid span context adds nothing'))
})

t.test('requestIdFromActiveSpan: the active trace id, else a UUID', async (t) => {
  t.match(requestIdFromActiveSpan(), UUID)
  tracer.startActiveSpan('work', (span) => {
    t.equal(requestIdFromActiveSpan(), span.spanContext().traceId)
    span.end()
  })
})

t.test('Fastify: the request id is the server span\'s trace id; logs carry it and the span', async (t) => {
  const spans: Span[] = []
  const { logger, lines } = captureLogs({ mixin: otelLogMixin() })
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    serverFactory: (handler) => http.createServer(inServerSpan(handler as http.RequestListener, spans))
  })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { requestId: { generate: requestIdFromActiveSpan } })
  const log = requestLogger(logger)
  app.get('/', async () => {
    await new Promise((resolve) => setImmediate(resolve))
    log.info('handled')
    return { id: requestId() }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const [a, b] = await Promise.all([send({ port: portOf(app.server) }), send({ port: portOf(app.server) })])
  const ids = [a.json<{ id: string }>().id, b.json<{ id: string }>().id]
  t.same(ids.sort(), spans.map((span) => span.spanContext().traceId).sort(), 'each request id is its span\'s trace id')
  for (const span of spans) {
    const { traceId, spanId } = span.spanContext()
    const handled = lines.find((line) => line.msg === 'handled' && line.reqId === traceId)
    t.match(handled, { reqId: traceId, trace_id: traceId, span_id: spanId }, 'the line carries the request id, trace id and span id')
  }
})

t.test('Express: generate with logMixin and otelLogMixin in one pino mixin', async (t) => {
  const spans: Span[] = []
  const locals = logMixin()
  const otel = otelLogMixin()
  const { logger, lines } = captureLogs({ mixin: () => ({ ...locals(), ...otel() }) })
  const app = express()
  app.use(expressRequestLocals({ requestId: { generate: requestIdFromActiveSpan } }))
  app.get('/', (_req, res) => { logger.info('handled'); res.json({ id: requestId() }) })
  const server = http.createServer(inServerSpan(app, spans))
  t.teardown(() => server.close())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { id } = (await send({ port: portOf(server) })).json<{ id: string }>()
  t.equal(id, spans[0].spanContext().traceId)
  t.match(lines.find((line) => line.msg === 'handled'), { reqId: id, trace_id: id, span_id: spans[0].spanContext().spanId })
})

t.test('requestIdFromActiveSpan on an edge: a trace continued from the client\'s headers is not its request id', async (t) => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  t.teardown(() => { propagation.disable() })
  const spans: Span[] = []
  // OpenTelemetry's HTTP instrumentation continues an incoming traceparent by default.
  const continuing = (handler: http.RequestListener): http.RequestListener => (req, res) => {
    const parent = propagation.extract(context.active(), req.headers)
    tracer.startActiveSpan('GET', {}, parent, (span) => {
      spans.push(span)
      res.on('close', () => span.end())
      handler(req, res)
    })
  }
  const app = express()
  app.use(expressRequestLocals({ requestId: { generate: requestIdFromActiveSpan } }))
  app.get('/', (_req, res) => { res.json({ id: requestId() }) })
  const server = http.createServer(continuing(app))
  t.teardown(() => server.close())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = portOf(server)
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const [a, b] = await Promise.all([send({ port, headers: { traceparent } }), send({ port, headers: { traceparent } })])
  t.equal(spans[0].spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'OpenTelemetry did continue the client\'s trace')
  t.match(a.json(), { id: UUID }, 'the request id is not the client\'s trace id')
  t.not(a.json<{ id: string }>().id, b.json<{ id: string }>().id, 'two clients sending one traceparent get two request ids')
  const local = (await send({ port })).json<{ id: string }>().id
  t.equal(local, spans[2].spanContext().traceId, 'a trace started here is the request id')

  t.match(requestIdFromActiveSpan({ headers: new Headers({ traceparent }) }), UUID, 'no span active: a UUID')
  tracer.startActiveSpan('work', {}, propagation.extract(context.active(), { traceparent }), (span) => {
    t.match(requestIdFromActiveSpan({ headers: new Headers({ traceparent }) }), UUID, 'a Fetch request\'s Headers are read too')
    t.equal(requestIdFromActiveSpan({ headers: new Headers() }), span.spanContext().traceId, 'a Fetch request without the trace')
    t.equal(requestIdFromActiveSpan({ headers: 'nonsense' }), span.spanContext().traceId, 'headers that are not headers carry no trace')
    span.end()
  })
  propagation.disable()
  propagation.setGlobalPropagator({
    inject () {},
    fields: () => ['traceparent'],
    extract () { throw new Error('hostile header') }
  })
  tracer.startActiveSpan('work', (span) => {
    t.match(requestIdFromActiveSpan({ headers: {} }), UUID, 'a propagator that throws: the trace is not trusted')
    span.end()
  })
  // Propagators that look for their header by listing the carrier's keys.
  const listed: string[][] = []
  propagation.disable()
  propagation.setGlobalPropagator({
    inject () {},
    fields: () => [],
    extract (context, carrier, getter) { listed.push(getter.keys(carrier)); return context }
  })
  tracer.startActiveSpan('work', (span) => {
    requestIdFromActiveSpan({ headers: new Headers({ 'x-a': '1' }) })
    requestIdFromActiveSpan({ headers: { 'x-b': '2' } })
    requestIdFromActiveSpan({ headers: 'nonsense' })
    span.end()
  })
  t.same(listed, [['x-a'], ['x-b'], []], 'the keys of Fetch Headers and of a header record; none of anything else')
  propagation.disable()
})

t.test('otelLogMixin refuses unknown keys and empty field names', async (t) => {
  t.throws(() => otelLogMixin({ traceIdkey: 'x' } as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /did you mean `traceIdKey`/ })
  t.throws(() => otelLogMixin({ spanIdKey: '' }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /otelLogMixin\(options\)\.spanIdKey must be a non-empty string/ })
})
