import t from 'tap'
import { spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { createInterface } from 'node:readline'
import { resolve } from 'node:path'
import { keepAliveAgent, send } from '../helpers/http.js'

// Two real processes, as deployed: service A (Fastify, the edge) calls
// service B (Express, internal) with fetch inside a request. Each writes
// pino lines to its stdout; the test follows one request id through both.

const root = resolve(import.meta.dirname, '../..')

interface LogLine { service: string, level: number, msg?: string, reqId?: string, traceId?: string, tenant?: string, caller?: string }

interface Service {
  url: string
  lines: LogLine[]
  /** Emits 'line' for each line read. */
  events: EventEmitter
  stderr: () => string
}

async function start (file: string, env: Record<string, string> = {}): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', `test/fixtures/services/${file}`], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  })
  const lines: LogLine[] = []
  const events = new EventEmitter()
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(JSON.parse(line) as LogLine)
    events.emit('line')
  })
  let stderr = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)
      if (match !== null) resolve(match[1])
    })
    child.on('exit', (code) => reject(new Error(`${file} exited with ${String(code)}: ${stderr}`)))
  })
  return { url, lines, events, stderr: () => stderr }
}

const portOf = (url: string): number => Number(new URL(url).port)
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const b = await start('service-b.ts')
const a = await start('service-a.ts', { SERVICE_B_URL: b.url })

// A line written by the time the response arrived may still be in the pipe.
async function linesOf (service: Service, reqId: string, count: number): Promise<LogLine[]> {
  for (;;) {
    const found = service.lines.filter((line) => line.reqId === reqId)
    if (found.length >= count) return found
    await once(service.events, 'line')
  }
}

t.test('one request id and trace id through both services\' logs', async (t) => {
  const agent = keepAliveAgent(8)
  t.teardown(() => agent.destroy())
  const forged = { 'x-request-id': 'forged-by-client', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', baggage: 'tenant=evil', 'x-user': 'admin' }
  const calls = await Promise.all(Array.from({ length: 8 }, (_, i) => send({
    port: portOf(a.url), agent, path: '/orders', headers: { ...forged, authorization: i % 2 === 0 ? 'Bearer acme-key' : 'none' }
  })))
  const ids = new Set<string>()
  for (const [i, res] of calls.entries()) {
    t.equal(res.status, 200)
    const id = res.headers['x-request-id'] as string
    ids.add(id)
    t.match(id, UUID, 'the edge made its own id: a client\'s is not trusted')
    const { fromB } = res.json<{ fromB: { requestId: string, traceId: string, tenant: string, caller: string } }>()
    const authenticated = (await linesOf(a, id, 2)).find((line) => line.msg === 'authenticated') as LogLine
    t.match(authenticated.traceId, /^[0-9a-f]{32}$/, 'A started a trace')
    t.not(authenticated.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'not the client\'s')
    t.same(fromB, { requestId: id, traceId: authenticated.traceId, tenant: i % 2 === 0 ? 'acme' : 'public', caller: 'service-a' }, 'B continued A\'s id, trace and tenant')

    const inB = await linesOf(b, id, 1)
    t.match(inB, [{ service: 'b', msg: 'listing invoices', reqId: id, traceId: authenticated.traceId, tenant: fromB.tenant, caller: 'service-a' }], 'B\'s line carries A\'s request id and trace id')
    const inA = await linesOf(a, id, 4)
    t.same(inA.map((line) => line.msg), ['incoming request', 'authenticated', 'calling service b', 'request completed'], 'A\'s lines for the same id')
  }
  t.equal(ids.size, 8, 'every request its own id')
})

t.test('B ignores forged identity, and drops oversized or malformed trace and baggage without error', async (t) => {
  const cases: Array<[string, Record<string, string>, object]> = [
    ['forged identity headers', { 'x-user': 'admin', baggage: 'caller=admin,user=admin,roles=root,tenant=acme' }, { tenant: 'acme', caller: null }],
    ['forged identity with credentials', { authorization: 'Bearer service-a-token', baggage: 'caller=admin' }, { caller: 'service-a' }],
    ['oversized baggage', { baggage: `tenant=evil,pad=${'p'.repeat(9000)}` }, { tenant: 'public' }],
    ['too many baggage members', { baggage: 'tenant=evil,' + 'x=1,'.repeat(200) }, { tenant: 'public' }],
    ['malformed baggage', { baggage: 'tenant=%ZZ;;;,=,,"' }, { tenant: 'public' }],
    ['malformed traceparent', { traceparent: '00-XYZ-00f067aa0ba902b7-01' }, { traceId: null }],
    ['oversized traceparent', { traceparent: `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-${'f'.repeat(9000)}` }, { traceId: null }],
    ['all-zero trace id', { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }, { traceId: null }],
    ['two traceparents', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, { traceId: null }],
    ['a forged request id', { 'x-request-id': 'EVIL id\u00e9' }, { requestId: UUID }]
  ]
  for (const [name, headers, expected] of cases) {
    const res = await send({ port: portOf(b.url), path: '/invoices', headers })
    t.equal(res.status, 200, `${name}: answered`)
    t.match(res.json(), expected, name)
  }
  const still = await send({ port: portOf(b.url), path: '/invoices', headers: { 'x-request-id': 'after-all-that' } })
  t.equal(still.json<{ requestId: string }>().requestId, 'after-all-that', 'B is still up')
  t.notOk(b.lines.some((line) => line.level >= 50), 'B logged no error')
  t.equal(b.stderr().replace(/listening at \S+\n/, ''), '', 'and wrote nothing to stderr')
})
