import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import Fastify from 'fastify'
import express5 from 'express'
import fastifyRequestLocals from '../../../src/fastify.js'
import { expressRequestLocals } from '../../../src/express.js'
import { withRequestLocals } from '../../../src/http.js'
import { resolveRequestId, validateRequestId, type RequestIdRejection } from '../../../src/headers/request-id.js'
import { requestId, requestLocal } from '../../../src/index.js'
import { keepAliveAgent, portOf, send } from '../../helpers/http.js'
import type { LogLine } from '../../helpers/logs.js'
import { listen, nodeAdapters, reply } from '../../helpers/node-adapters.js'
import { fastifyWith, policyOf, UUID, type SeenIds } from './shared.js'
import '../../helpers/locals.js'

// Whatever a client sends as a request id, the outcome is documented
// (RELIABILITY.md): a safe id is accepted verbatim; anything else is
// replaced by a fresh id, logged at debug with the reason and never the
// value, never echoed raw, never a crash. The same table goes through the
// policy itself, each adapter, and the wire.

/**
 * Incoming x-request-id values (one entry per header occurrence) and what
 * the policy must make of them: accepted verbatim, or replaced for a reason.
 */
const hostileHeaders: Array<{ name: string, values: string[], rejected: RequestIdRejection | undefined }> = [
  { name: 'a plain id', values: ['abc-123_x.y:z@host'], rejected: undefined },
  { name: 'exactly 200 characters', values: ['a'.repeat(200)], rejected: undefined },
  { name: '201 characters', values: ['b'.repeat(201)], rejected: 'too-long' },
  { name: '8 KB', values: ['c'.repeat(8192)], rejected: 'too-long' },
  { name: 'empty', values: [''], rejected: 'empty' },
  { name: 'CR/LF (log and header injection)', values: ['EVIL\r\nX-Injected: 1'], rejected: 'invalid-characters' },
  { name: 'a bare LF forging a log line', values: ['EVIL\n{"level":50,"msg":"forged"}'], rejected: 'invalid-characters' },
  { name: 'NUL', values: ['EVIL\u0000'], rejected: 'invalid-characters' },
  { name: 'ESC (terminal escapes)', values: ['EVIL\u001b[31mred'], rejected: 'invalid-characters' },
  { name: 'DEL', values: ['EVIL\u007f'], rejected: 'invalid-characters' },
  { name: 'tab', values: ['EVIL\tid'], rejected: 'invalid-characters' },
  { name: 'space', values: ['EVIL id'], rejected: 'invalid-characters' },
  { name: 'non-ASCII', values: ['EVILcafé'], rejected: 'invalid-characters' },
  { name: 'bidi override', values: ['EVIL\u202egnp.exe'], rejected: 'invalid-characters' },
  { name: 'latin1 bytes as a server decodes them', values: ['EVIL\u00c3\u00a9'], rejected: 'invalid-characters' },
  { name: 'comma (a folded list)', values: ['EVIL,second'], rejected: 'invalid-characters' },
  { name: 'quotes and braces', values: ['EVIL"}{'], rejected: 'invalid-characters' },
  { name: 'a path', values: ['EVIL/../etc'], rejected: 'invalid-characters' },
  { name: 'duplicated, different values', values: ['first', 'second'], rejected: 'duplicated' },
  { name: 'duplicated, same value', values: ['same', 'same'], rejected: 'duplicated' }
]

// All but CR/LF, NUL, ESC, DEL and non-latin1 characters, which Node's
// client refuses to send (and its server's parser rejects before any hook).
const sendable = hostileHeaders.filter(({ values }) => values.every((value) => /^[\t\x20-\x7e\x80-\xff]*$/.test(value)))

const accepting = policyOf({ upstream: { trust: true } })

/** One request whose x-request-id header occurs once per value; resolves with the JSON body and the echoed id. */
function sendIds (port: number, agent: http.Agent, values: string[]): Promise<{ body: unknown, echoed: string | string[] | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', agent, headers: { 'x-request-id': values.length === 1 ? values[0] : values } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ body: JSON.parse(text), echoed: res.headers['x-request-id'] }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('validateRequestId and resolveRequestId: the hostile header table', async (t) => {
  for (const { name, values, rejected } of hostileHeaders) {
    const rawHeaders = ['Host', 'example', ...values.flatMap((value) => ['X-Request-Id', value])]
    const result = resolveRequestId(accepting, rawHeaders)
    t.equal(result.rejected, rejected, `${name}: reason`)
    if (rejected === undefined) {
      t.equal(result.id, values[0], `${name}: accepted verbatim`)
    } else {
      t.match(result.id, UUID, `${name}: replaced by a UUID`)
      t.notOk(values.includes(result.id), `${name}: never the incoming value`)
    }
    if (values.length === 1) t.equal(validateRequestId(values[0]), rejected, `${name}: validateRequestId agrees`)
  }
})

function checkOutcome (t: Test, name: string, values: string[], rejected: string | undefined, seen: SeenIds, echoed: unknown, lines: LogLine[]): void {
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

t.test('Fastify: the hostile header table, through inject', async (t) => {
  for (const { name, values, rejected } of hostileHeaders) {
    const { app, lines } = await fastifyWith(t, { upstream: { trust: true }, requestId: { echoHeader: true } })
    const res = await app.inject({ url: '/', headers: { 'x-request-id': values.length === 1 ? values[0] : values } })
    t.equal(res.statusCode, 200, name)
    checkOutcome(t, name, values, rejected, res.json(), res.headers['x-request-id'], lines)
  }
})

t.test('Fastify: the hostile header table over real keep-alive sockets (every value an HTTP client can send)', async (t) => {
  const { app, lines } = await fastifyWith(t, { upstream: { trust: true }, requestId: { echoHeader: true } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent(4)
  t.teardown(() => agent.destroy())
  t.equal(sendable.length, 14, 'most of the table goes over the wire')
  for (const { name, values, rejected } of sendable) {
    lines.length = 0
    const { body, echoed } = await sendIds(portOf(app.server), agent, values)
    checkOutcome(t, name, values, rejected, body as SeenIds, echoed, lines)
  }
})

for (const adapter of nodeAdapters) {
  t.test(`${adapter.name}: the hostile header table over real keep-alive sockets`, async (t) => {
    const debug: Array<{ details: Record<string, unknown>, message: string }> = []
    const logger = { debug: (details: object, message: string) => { debug.push({ details: details as Record<string, unknown>, message }) } }
    const port = await adapter.start(t, (_req, res) => reply(res, { id: requestId() }), { upstream: { trust: true }, requestId: { echoHeader: true }, logger })
    const agent = keepAliveAgent(2)
    t.teardown(() => agent.destroy())
    for (const { name, values, rejected } of sendable) {
      debug.length = 0
      const res = await sendIds(port, agent, values) as { body: { id: string }, echoed: unknown }
      t.equal(res.echoed, res.body.id, `${name}: the echoed id is the one in use`)
      if (rejected === undefined) {
        t.equal(res.body.id, values[0], `${name}: accepted`)
        t.same(debug, [], `${name}: nothing logged`)
      } else {
        t.match(res.body.id, UUID, `${name}: replaced`)
        t.same(debug, [{ details: { requestIdHeader: 'x-request-id', reason: rejected, reqId: res.body.id }, message: 'request-locals: replaced the incoming request id' }], `${name}: logged at debug with the reason, never the value`)
      }
    }
  })
}

t.test('node:http without a logger option: a replaced id is logged through req.log (as pino-http sets it)', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const wrapped = withRequestLocals((_req, res) => reply(res, { id: requestId() }), { upstream: { trust: true } })
  const port = await listen(t, http.createServer((req, res) => {
    Object.assign(req, { log: { debug: (details: Record<string, unknown>) => { lines.push(details) } } })
    wrapped(req, res)
  }))
  const res = await send({ port, headers: { 'x-request-id': 'bad value' } })
  t.match(res.json(), { id: UUID })
  t.same(lines, [{ requestIdHeader: 'x-request-id', reason: 'invalid-characters', reqId: res.json<{ id: string }>().id }])
  const silent = await listen(t, http.createServer(withRequestLocals((_req, res) => reply(res, { id: requestId() }), { upstream: { trust: true } })))
  t.match((await send({ port: silent, headers: { 'x-request-id': 'bad value' } })).json(), { id: UUID }, 'with neither, nothing is logged and nothing throws')
})

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
  await fastify.register(fastifyRequestLocals, { upstream: { trust: true }, requestId: { echoHeader: true } })
  let fastifyRan = 0
  fastify.addHook('onRequest', async () => { fastifyRan++ })
  fastify.get('/', async () => ({ id: requestId(), seen: requestLocal.seen ?? null }))
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => fastify.close())

  const app = express5()
  let expressRan = 0
  app.use(expressRequestLocals({ upstream: { trust: true }, requestId: { echoHeader: true } }))
  app.use((_req, _res, next) => { expressRan++; next() })
  app.get('/', (_req, res) => { res.json({ id: requestId(), seen: requestLocal.seen ?? null }) })
  return [
    { name: 'Fastify', port: portOf(fastify.server), ran: () => fastifyRan },
    { name: 'Express', port: await listen(t, http.createServer(app)), ran: () => expressRan }
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
