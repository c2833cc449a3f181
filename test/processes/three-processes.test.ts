import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { keepAliveAgent, send } from '../helpers/http.js'
import type { LogLine } from '../helpers/logs.js'
import { startLogged, type LoggedProcess } from '../helpers/processes.js'
import { withRedis } from '../helpers/redis.js'

// One request id through three processes, as deployed: service A (Fastify,
// the edge) calls service B (Express) with fetch and queues a BullMQ job; a
// worker process runs the job in a scope reopened from its snapshot and calls
// B again. Every line any of them writes about the request carries A's
// request id and trace id.

const CHECKOUTS = 6

function urlOf (process: LoggedProcess, message: RegExp | string): string {
  const line = process.lines.find((line) => typeof message === 'string' ? line.msg === message : message.test(String(line.msg)))
  return typeof line?.url === 'string' ? line.url : String(/http:\/\/127\.0\.0\.1:\d+/.exec(String(line?.msg))?.[0])
}

async function threeProcesses (t: Test, redisUrl: string): Promise<void> {
  const queueName = `request-locals-receipts-${randomUUID()}`
  const { hostname, port } = new URL(redisUrl)
  const queue = new Queue(queueName, { connection: { host: hostname, port: Number(port) } })
  t.teardown(async () => {
    await queue.obliterate({ force: true })
    await queue.close()
  })
  const env = { REDIS_URL: redisUrl, QUEUE_NAME: queueName }
  const b = startLogged('test/fixtures/services/service-b.ts', {})
  t.teardown(() => b.stop())
  await b.waitFor('service B to listen', (lines) => lines.some((line) => line.msg === 'listening'))
  const serviceB = { SERVICE_B_URL: urlOf(b, 'listening') }
  const worker = startLogged('test/fixtures/services/receipt-worker.ts', { ...env, ...serviceB })
  t.teardown(() => worker.stop())
  const a = startLogged('test/fixtures/services/service-a.ts', { ...env, ...serviceB })
  t.teardown(() => a.stop())
  await a.waitFor('service A to listen', (lines) => lines.some((line) => /^Server listening at/.test(String(line.msg))))
  await worker.waitFor('the worker to be ready', (lines) => lines.some((line) => line.msg === 'worker ready'))

  const agent = keepAliveAgent(CHECKOUTS)
  t.teardown(() => agent.destroy())
  const responses = await Promise.all(Array.from({ length: CHECKOUTS }, (_, i) => send({
    port: Number(new URL(urlOf(a, /^Server listening at/)).port),
    agent,
    method: 'POST',
    path: '/checkout',
    // A client's own id, trace and baggage: the edge trusts none of them.
    headers: { authorization: i % 2 === 0 ? 'Bearer acme-key' : 'none', 'x-request-id': `forged-${i}`, baggage: 'tenant=evil' }
  })))
  t.same(responses.map((res) => res.status), responses.map(() => 200))
  const ids = responses.map((res) => String(res.headers['x-request-id']))
  t.equal(new Set(ids).size, CHECKOUTS, 'every checkout its own id')

  const of = (lines: LogLine[], id: string): LogLine[] => lines.filter((line) => line.reqId === id)
  await worker.waitFor('every receipt to be sent', (lines) => lines.filter((line) => line.msg === 'receipt sent').length === CHECKOUTS)
  await a.waitFor('every checkout to be logged as completed', (lines) => lines.filter((line) => line.msg === 'request completed').length === CHECKOUTS)
  await b.waitFor('B to log both calls of every checkout', (lines) => lines.filter((line) => line.msg === 'listing invoices').length === 2 * CHECKOUTS)

  for (const [i, id] of ids.entries()) {
    const tenant = i % 2 === 0 ? 'acme' : 'public'
    const inA = of(a.lines, id)
    t.same(inA.map((line) => line.msg), ['incoming request', 'authenticated', 'receipt queued', 'request completed'], `${id}: A's lines`)
    const trace = inA[1].traceId
    t.match(trace, /^[0-9a-f]{32}$/, `${id}: A started a trace`)
    t.match(of(b.lines, id), [
      { service: 'b', msg: 'listing invoices', traceId: trace, tenant, caller: 'service-a' },
      { service: 'b', msg: 'listing invoices', traceId: trace, tenant, caller: undefined }
    ], `${id}: B's lines, for A's call and then the worker's`)
    t.match(of(worker.lines, id), [
      { service: 'worker', msg: 'sending receipt', traceId: trace, tenant },
      { service: 'worker', msg: 'receipt sent', traceId: trace, tenant, status: 200 }
    ], `${id}: the worker's lines`)
  }
  const aboutRequests = (lines: LogLine[]): LogLine[] => lines.filter((line) => /invoices|receipt (sent|queued)|sending receipt/.test(String(line.msg)))
  t.ok([...aboutRequests(a.lines), ...aboutRequests(b.lines), ...aboutRequests(worker.lines)].every((line) => ids.includes(String(line.reqId))), 'no line about a request lacks its id')
  t.notOk([...a.lines, ...b.lines, ...worker.lines].some((line) => String(line.reqId).startsWith('forged') || line.tenant === 'evil'), 'nothing a client sent was trusted')

  // What a reader following one request sees, grep by id across the three logs.
  const first = ids[0]
  t.comment(`one request through three processes (reqId ${first}):\n` + [...of(a.lines, first), ...of(b.lines, first), ...of(worker.lines, first)]
    .map(({ service, msg, reqId, traceId, tenant }) => JSON.stringify({ service: service ?? 'a', msg, reqId, traceId, tenant })).join('\n'))
}

await withRedis(async (url) => { await t.test('one request id and trace id through the logs of an edge, a service and a queue worker', (t) => threeProcesses(t, url)) })
