import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { keepAliveAgent, send } from '../helpers/http.js'
import type { LogLine } from '../helpers/logs.js'
import { startLogged } from '../helpers/processes.js'
import { withRedis } from '../helpers/redis.js'

// One request id followed across processes: an API process queues a BullMQ
// job with a snapshot of the request, a separate worker process runs it in a
// scope reopened from that snapshot, and both processes' log lines carry the
// same id. Against a real Redis server: REDIS_URL's (.ci/run starts one), or
// one started here from Debian's redis-server.

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLERS = [
  { user: 'alice', tenant: 'acme', requestId: 'checkout-1' },
  { user: 'bob', tenant: 'globex', requestId: 'checkout-2' },
  { user: 'carol', tenant: 'acme', requestId: 'checkout-3' },
  { user: 'dave', tenant: 'initech', requestId: undefined } // gets a fresh id
]

async function queueTests (url: string): Promise<void> {
  // A queue of its own, so that runs never share jobs; removed afterwards.
  const env = { REDIS_URL: url, QUEUE_NAME: `request-locals-test-${randomUUID()}`, REQUESTS: String(CALLERS.length) }
  const { hostname, port } = new URL(url)
  const queue = new Queue(env.QUEUE_NAME, { connection: { host: hostname, port: Number(port) } })
  t.teardown(async () => {
    await queue.obliterate({ force: true })
    await queue.close()
  })
  const worker = startLogged('test/fixtures/queue-worker.ts', env)
  t.teardown(() => worker.stop())
  const api = startLogged('test/fixtures/queue-producer.ts', env)
  t.teardown(() => api.stop())
  const listening = await api.waitFor('the API to listen', (lines) => lines.some((line) => line.msg === 'api listening'))
  await worker.waitFor('the worker to be ready', (lines) => lines.some((line) => line.msg === 'worker ready'))
  const apiPort = listening.find((line) => line.msg === 'api listening')!.port as number

  await t.test('each request\'s job logs, in the worker process, under the id of the request that queued it', async (t) => {
    const agent = keepAliveAgent()
    t.teardown(() => agent.destroy())
    const responses = await Promise.all(CALLERS.map(({ user, tenant, requestId }, i) => send({
      port: apiPort,
      agent,
      method: 'POST',
      path: '/reports',
      headers: {
        'x-user': user,
        'x-tenant': tenant,
        traceparent: `00-${TRACE.slice(0, 31)}${i}-00f067aa0ba902b7-01`,
        ...(requestId === undefined ? {} : { 'x-request-id': requestId })
      }
    })))
    t.same(responses.map((res) => res.status), CALLERS.map(() => 200))
    const ids = responses.map((res) => String(res.headers['x-request-id']))
    t.same(ids.slice(0, 3), ['checkout-1', 'checkout-2', 'checkout-3'], 'the API continued the callers\' ids')
    t.match(ids[3], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'and gave a fresh one to the caller that sent none')

    const built = (lines: LogLine[]): LogLine[] => lines.filter((line) => line.msg === 'report built')
    await worker.waitFor('every report to be built', (lines) => built(lines).length === CALLERS.length)
    // Fastify writes its closing line after the response: wait for it too.
    await api.waitFor('every request to be logged as completed', (lines) => lines.filter((line) => line.msg === 'request completed').length === CALLERS.length)

    CALLERS.forEach(({ user, tenant }, i) => {
      const id = ids[i]
      const apiLines = api.lines.filter((line) => line.reqId === id)
      t.same(apiLines.map((line) => line.msg), ['incoming request', 'report requested', 'report queued', 'request completed'], `${user}: the API's lines of the request`)
      const workerLines = worker.lines.filter((line) => line.reqId === id)
      t.same(workerLines.map(({ msg, reportId }) => ({ msg, reportId })), [
        { msg: 'building report', reportId: `report-of-${user}` },
        { msg: 'report built', reportId: `report-of-${user}` }
      ], `${user}: the worker's lines of the job, through requestLogger and logMixin`)
      t.match(workerLines[1], { service: 'worker', user, tenant, traceId: `${TRACE.slice(0, 31)}${i}` }, `${user}: with the request's locals and trace id`)
      t.equal(workerLines[0].service, 'worker')
      t.equal(apiLines[2].jobId, String(responses[i].json<{ jobId: string }>().jobId))
    })
    const inJobs = worker.lines.filter((line) => line.msg === 'building report' || line.msg === 'report built')
    t.equal(inJobs.length, CALLERS.length * 2, 'every line written in a job carries one of the requests\' ids')
    const lastStart = inJobs.map((line) => line.msg).lastIndexOf('building report')
    const firstEnd = inJobs.map((line) => line.msg).indexOf('report built')
    t.ok(lastStart < firstEnd, 'the jobs ran interleaved: all had started before any finished')

    const completed = await worker.waitFor('BullMQ\'s completed events', (lines) => lines.filter((line) => line.msg === 'job completed').length === CALLERS.length)
    t.same(completed.filter((line) => line.msg === 'job completed').map((line) => line.reqId), CALLERS.map(() => undefined), 'the queue\'s own events run outside the jobs\' scopes')
  })

  await t.test('a job whose snapshot carries a forged request id fails without running and without logging that id', async (t) => {
    const forged = 'checkout-1\n{"level":30,"service":"worker","msg":"report built","reqId":"checkout-1"}'
    const job = await queue.add('report', { reportId: 'forged', locals: { tenant: 'acme', user: { id: 'mallory' }, $requestLocals: { requestId: forged } } })
    // Its failure, or (were it accepted) its first line.
    const lines = await worker.waitFor('the forged job to fail', (lines) => lines.some((line) => line.msg === 'job failed' || line.reportId === 'forged'))
    const failed = lines.filter((line) => line.msg === 'job failed')
    t.same(failed.map(({ jobId, code, reqId }) => ({ jobId, code, reqId })), [{ jobId: job.id, code: 'ERR_REQUEST_LOCALS_INVALID_SNAPSHOT', reqId: undefined }])
    t.match(failed[0].err, /values\.\$requestLocals\.requestId cannot be reopened: .*not shown, as it may carry forged log lines/)
    t.equal(worker.lines.some((line) => line.reportId === 'forged'), false, 'the job\'s code never ran')
    t.equal(worker.raw.some((line) => line.includes('mallory') || line.includes('\\n{')), false, 'nothing of the forged id reached the logs')
    t.equal(await queue.getJobState(job.id!), 'failed')
    t.match((await queue.getJob(job.id!))!.failedReason, /ERR_REQUEST_LOCALS_INVALID_SNAPSHOT|values\.\$requestLocals\.requestId cannot be reopened/)
  })
}

await withRedis(queueTests)
