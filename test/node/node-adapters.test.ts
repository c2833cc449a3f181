import t from 'tap'
import http from 'node:http'
import express5 from 'express'
import express4 from 'express4'
import type { Express } from 'express'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals, type HttpRequestLocalsOptions } from '../../src/http.js'
import { defineRequestResource, endRequestResources, requestId, traceId, type ScopeOutcome } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf, send } from '../helpers/http.js'
import { hostileHeaders } from '../helpers/hostile-headers.js'

// The Express and node:http adapters wired to the features that hang off a
// request's scope: request ids (with their header policy) and per-request
// resources (released when the response closes).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const validTraceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>

type Options = Pick<HttpRequestLocalsOptions, 'requestId' | 'upstream' | 'logger'>

interface Flavour { name: string, start: (route: Route, options: Options) => Promise<number> }

function listen (server: http.Server): Promise<number> {
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(portOf(server))))
}

function expressFlavour (name: string, make: () => Express): Flavour {
  return {
    name,
    start: (route, options) => {
      const app = make()
      app.use(expressRequestLocals(options))
      app.all('/', (req, res, next) => { Promise.resolve(route(req, res)).catch(next) })
      return listen(http.createServer(app))
    }
  }
}

const flavours: Flavour[] = [
  expressFlavour('Express 5', () => express5()),
  expressFlavour('Express 4', () => express4() as unknown as Express),
  { name: 'node:http', start: (route, options) => listen(http.createServer(withRequestLocals(route, options))) }
]

const reply = (res: http.ServerResponse, body: unknown): void => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify(body))
}

for (const flavour of flavours) {
  t.test(`${flavour.name}: request ids`, async (t) => {
    const debug: Array<{ details: Record<string, unknown>, message: string }> = []
    const logger = { debug: (details: object, message: string) => { debug.push({ details: details as Record<string, unknown>, message }) } }
    const route: Route = (_req, res) => reply(res, { id: requestId(), again: requestId(), traceId: traceId() ?? null })

    const lazy = await flavour.start(route, {})
    const plain = (await send({ port: lazy, headers: { 'x-request-id': 'from-client' } }))
    t.match(plain.json(), { id: UUID, traceId: null }, 'without the option: a UUID, the header ignored')
    t.equal(plain.json<{ id: string, again: string }>().again, plain.json<{ id: string }>().id, 'stable within the request')
    t.equal(plain.headers['x-request-id'], undefined, 'nothing echoed')

    const untrusted = await flavour.start(route, { upstream: { trust: false } })
    t.equal((await send({ port: untrusted, headers: { traceparent: validTraceparent } })).json<{ traceId: null }>().traceId, null, 'an untrusted edge continues no trace')
    const port = await flavour.start(route, { upstream: { trust: true }, requestId: { echoHeader: true }, logger })
    const agent = keepAliveAgent(2)
    t.teardown(() => agent.destroy())
    const sendable = hostileHeaders.filter(({ values }) => values.every((value) => /^[\t\x20-\x7e\x80-\xff]*$/.test(value)))
    for (const { name, values, rejected } of sendable) {
      debug.length = 0
      const res = await new Promise<{ body: { id: string }, echoed: unknown }>((resolve, reject) => {
        const req = http.request({ port, host: '127.0.0.1', agent, headers: { 'x-request-id': values.length === 1 ? values[0] : values } }, (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => { text += chunk })
          res.on('end', () => resolve({ body: JSON.parse(text), echoed: res.headers['x-request-id'] }))
        })
        req.on('error', reject)
        req.end()
      })
      t.equal(res.echoed, res.body.id, `${name}: the echoed id is the one in use`)
      if (rejected === undefined) {
        t.equal(res.body.id, values[0], `${name}: accepted`)
        t.same(debug, [], `${name}: nothing logged`)
      } else {
        t.match(res.body.id, UUID, `${name}: replaced`)
        t.same(debug, [{ details: { requestIdHeader: 'x-request-id', reason: rejected, reqId: res.body.id }, message: 'request-locals: replaced the incoming request id' }], `${name}: logged at debug with the reason, never the value`)
      }
    }
    const traced = await send({ port, headers: { traceparent: validTraceparent } })
    t.equal(traced.json<{ traceId: string }>().traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'a valid traceparent gives the trace id')
    t.equal((await send({ port, headers: { traceparent: 'garbage' } })).json<{ traceId: null }>().traceId, null, 'an invalid one is ignored')
  })

  t.test(`${flavour.name}: per-request resources end with the response`, async (t) => {
    const disposed: ScopeOutcome[] = []
    const waiting = deferred()
    const tx = defineRequestResource({ name: 'tx', create: () => ({}), dispose: (_value, outcome) => { disposed.push(outcome); if (disposed.length === 3) waiting.resolve() } })
    const left = deferred()
    const arrived = deferred()
    const port = await flavour.start(async (req, res) => {
      await tx.get()
      if (req.headers['x-case'] === 'early') {
        await endRequestResources()
        reply(res, { ended: true })
      } else if (req.headers['x-case'] === 'leave') {
        req.socket.once('close', () => left.resolve())
        arrived.resolve()
        await left.promise
      } else {
        reply(res, { ok: true })
      }
    }, {})
    await send({ port })
    await send({ port, headers: { 'x-case': 'early' } })
    const client = http.request({ port, host: '127.0.0.1', headers: { 'x-case': 'leave' } })
    client.on('error', () => {})
    client.end()
    // The client leaves once the handler holds the resource.
    await arrived.promise
    client.destroy()
    await waiting.promise
    t.same(disposed.map((outcome) => outcome.status).sort(), ['aborted', 'completed', 'completed'])
  })
}

t.test('without a logger option, a replaced id is logged through req.log (as pino-http sets it)', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const wrapped = withRequestLocals((_req, res) => reply(res, { id: requestId() }), { upstream: { trust: true } })
  const port = await listen(http.createServer((req, res) => {
    Object.assign(req, { log: { debug: (details: Record<string, unknown>) => { lines.push(details) } } })
    wrapped(req, res)
  }))
  const res = await send({ port, headers: { 'x-request-id': 'bad value' } })
  t.match(res.json(), { id: UUID })
  t.same(lines, [{ requestIdHeader: 'x-request-id', reason: 'invalid-characters', reqId: res.json<{ id: string }>().id }])
  const silent = await listen(http.createServer(withRequestLocals((_req, res) => reply(res, { id: requestId() }), { upstream: { trust: true } })))
  t.match((await send({ port: silent, headers: { 'x-request-id': 'bad value' } })).json(), { id: UUID }, 'with neither, nothing is logged and nothing throws')
})

t.test('bad logger and requestId options fail creation with ERR_REQUEST_LOCALS_OPTIONS', async (t) => {
  t.throws(() => expressRequestLocals({ logger: {} as never }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /^expressRequestLocals\(options\)\.logger must have a debug\(details, message\) method.*found an instance of Object/ })
  t.throws(() => withRequestLocals(() => {}, { requestId: 'yes' as never }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /^withRequestLocals\(handler, options\)\.requestId must be a plain object; found a string/ })
})

t.test('the Express middleware on node:http2\'s compatibility API: a request outside node:http\'s prototypes still has its events in its scope', async (t) => {
  const { default: http2 } = await import('node:http2')
  const { requestLocal, tryGetLocals } = await import('../../src/index.js')
  const middleware = expressRequestLocals()
  const server = http2.createServer((req, res) => {
    Object.assign(res, { locals: {} })
    middleware(req as never, res as never, () => {
      requestLocal.user = { id: String(req.headers['x-user']) }
      req.on('data', () => {})
      // Emitted from the stream, outside the handler's async context.
      req.on('end', () => { res.end(tryGetLocals()?.user?.id ?? 'none') })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const session = http2.connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`)
  t.teardown(() => new Promise<void>((resolve) => { session.destroy(); server.close(() => resolve()) }))
  const answers = await Promise.all(['a', 'b', 'c'].map((user) => new Promise<string>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/', 'x-user': user })
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => resolve(body))
    stream.on('error', reject)
    stream.write('part one, ')
    setImmediate(() => stream.end('part two'))
  })))
  t.same(answers, ['a', 'b', 'c'])
})
