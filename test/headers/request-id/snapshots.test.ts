import t from 'tap'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../../src/fastify.js'
import { createRequestLocals, requestId, requestLocal, runWithLocals, snapshotLocals, traceId, type LocalsSnapshot, type RequestLocals } from '../../../src/index.js'
import { addLogBindings, logMixin, requestLogger } from '../../../src/pino.js'
import { propagationHeaders } from '../../../src/propagation.js'
import { Barrier, keepAliveAgent, portOf, send } from '../../helpers/http.js'
import { captureLogs } from '../../helpers/logs.js'
import '../../helpers/locals.js'

// A snapshot carries its request's id (and trace id) as plain data under
// $requestLocals, so that a job run from it logs under the request that
// queued it. The id may come back from a queue anyone can write to.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
type Snapshot = LocalsSnapshot<RequestLocals, 'user' | 'tenant'>

t.test('a request\'s snapshot carries its id and trace id; reopened after a JSON round trip, the job has them back', async (t) => {
  const { logger, lines } = captureLogs()
  const log = requestLogger(logger)
  const { logger: audit, lines: auditLines } = captureLogs({ mixin: logMixin({ locals: ['tenant'] }) })
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { upstream: { trust: true }, defaults: { tenant: 'acme' } })
  const USERS = ['u1', 'u2', 'u3', 'u4']
  const barrier = new Barrier(USERS.length)
  const queued: string[] = []
  app.post('/jobs', async (request) => {
    requestLocal.user = { id: String(request.headers['x-user']) }
    addLogBindings({ userId: requestLocal.user.id })
    await barrier.arrive() // every request in flight before any snapshots
    queued.push(JSON.stringify(snapshotLocals(['user', 'tenant'])))
    return { id: requestId() }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())
  const ids = await Promise.all(USERS.map(async (user, i) => (await send({
    port: portOf(app.server),
    agent,
    method: 'POST',
    path: '/jobs',
    headers: { 'x-user': user, 'x-request-id': `checkout-${i}`, traceparent: `00-${TRACE.slice(0, 31)}${i}-00f067aa0ba902b7-0${i % 2}` }
  })).json<{ id: string }>().id))
  t.same(ids, USERS.map((_, i) => `checkout-${i}`))
  const snapshots = queued.map((job) => JSON.parse(job) as Snapshot)
  t.same(snapshots.map((snapshot) => Object.keys(snapshot)), USERS.map(() => ['user', 'tenant', '$requestLocals']))
  t.same(snapshots.map((snapshot) => snapshot.$requestLocals).sort((a, b) => a.requestId!.localeCompare(b.requestId!)), USERS.map((_, i) => ({ requestId: `checkout-${i}`, traceId: `${TRACE.slice(0, 31)}${i}`, traceFlags: `0${i % 2}` })), 'the identity: request id, trace id and trace flags')

  // A worker, later, outside any request: the jobs run interleaved.
  const done = new Barrier(USERS.length)
  const seen = await Promise.all(snapshots.map((snapshot) => runWithLocals(snapshot, async () => {
    log.info('job started')
    await done.arrive()
    audit.info('job done')
    const outgoing = propagationHeaders()
    return { user: requestLocal.user!.id, id: requestId(), trace: traceId(), outgoing: `${outgoing['x-request-id']} ${outgoing.traceparent.replace(/-[0-9a-f]{16}-/, '-<span>-')}`, keys: Object.keys(requestLocal), hidden: (requestLocal as Record<string, unknown>).$requestLocals }
  })))
  t.same(seen.map(({ user, id, trace }) => `${user} ${id!} ${trace!}`).sort(), USERS.map((user, i) => `${user} checkout-${i} ${TRACE.slice(0, 31)}${i}`), 'each job has its own request\'s id and trace id back')
  t.same(seen.map(({ outgoing }) => outgoing).sort(), USERS.map((_, i) => `checkout-${i} 00-${TRACE.slice(0, 31)}${i}-<span>-0${i % 2}`), 'calls the jobs make carry the id and continue the trace, sampled or not as the request was')
  t.same(seen.map(({ keys, hidden }) => ({ keys, hidden })), USERS.map(() => ({ keys: ['user', 'tenant'], hidden: undefined })), '$requestLocals never becomes a local')
  const jobLines = lines.filter((line) => line.msg === 'job started')
  t.same(jobLines.map((line) => line.reqId).sort(), ids, 'requestLogger lines in the jobs carry the requests\' ids')
  t.equal(jobLines.some((line) => 'userId' in line), false, 'fields added with addLogBindings stay in the request (the job adds its own)')
  t.same(auditLines.map(({ reqId, traceId, tenant }) => `${String(reqId)} ${String(traceId)} ${String(tenant)}`).sort(), USERS.map((_, i) => `checkout-${i} ${TRACE.slice(0, 31)}${i} acme`), 'logMixin lines carry id, trace id and the chosen locals')
})

t.test('a snapshot made outside a request gives its scope an id, which the reopened scope shares', async (t) => {
  const { snapshot, id } = runWithLocals({ tenant: 'nightly' }, () => ({ snapshot: snapshotLocals(['tenant']), id: requestId() }))
  t.match(id, UUID)
  t.same(snapshot, { tenant: 'nightly', $requestLocals: { requestId: id } }, 'no trace id when the scope has none')
  t.equal(runWithLocals(snapshot, () => runWithLocals({ tenant: 'nested' }, requestId)), id, 'and scopes nested in the reopened one keep it')
  const again = runWithLocals(snapshot, () => snapshotLocals([]))
  t.same(again, { $requestLocals: { requestId: id } }, 'a job can queue the next job under the same id')
})

t.test('a snapshot\'s identity replaces the enclosing scope\'s; without one, a nested scope keeps its parent\'s', async (t) => {
  await runWithLocals({ tenant: 'worker', $requestLocals: { requestId: 'outer-1', traceId: TRACE } }, async () => {
    addLogBindings({ workerId: 7 })
    t.same([requestId(), traceId()], ['outer-1', TRACE])
    const { logger, lines } = captureLogs({ mixin: logMixin() })
    runWithLocals({ user: { id: 'u9' }, $requestLocals: { requestId: 'job-9' } }, () => {
      t.same([requestId(), traceId(), requestLocal.tenant, requestLocal.user!.id], ['job-9', undefined, 'worker', 'u9'], 'its own id and trace id; the locals still start from a copy')
      logger.info('in the job')
    })
    runWithLocals({ user: { id: 'u10' }, $requestLocals: {} }, () => {
      t.match(requestId(), UUID, 'an identity without a request id gets a fresh one, not the enclosing scope\'s')
    })
    runWithLocals({ $requestLocals: { traceId: TRACE } }, () => {
      t.ok(requestId() !== 'outer-1' && traceId() === TRACE, 'a trace id alone is kept')
      t.match(propagationHeaders().traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`), 'with the flags unknown, not sampled')
    })
    runWithLocals({ $requestLocals: { traceFlags: '01' } }, () => {
      t.equal(traceId(), undefined, 'flags without a trace id start no trace')
    })
    runWithLocals({ $requestLocals: undefined }, () => {
      t.same([requestId(), traceId()], ['outer-1', TRACE], '$requestLocals: undefined is no identity: the parent\'s is kept')
      logger.info('nested')
    })
    t.same(lines.map(({ msg, reqId, workerId }) => ({ msg, reqId, workerId })), [
      { msg: 'in the job', reqId: 'job-9', workerId: undefined },
      { msg: 'nested', reqId: 'outer-1', workerId: 7 }
    ], 'log fields belong to the identity: a reopened job does not take the enclosing scope\'s')
  })

  const jobs = createRequestLocals<{ jobId: string }>()
  const reopened = jobs.runWithLocals({ jobId: 'j1', $requestLocals: { requestId: 'r-1' } }, () => jobs.snapshotLocals(['jobId']))
  t.same(reopened, { jobId: 'j1', $requestLocals: { requestId: 'r-1' } }, 'isolated instances carry and reopen identities too')
})

t.test('an id that is not a safe one (Fastify\'s genReqId, requestIdHeader) is left out of the snapshot, never refused in the request', async (t) => {
  const app = Fastify({ genReqId: (request) => String(request.headers['x-raw-id']) })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals)
  app.get('/', async () => snapshotLocals([]))
  const unsafe = await app.inject({ url: '/', headers: { 'x-raw-id': 'evil\t{"forged":1}' } })
  t.equal(unsafe.statusCode, 200)
  t.same(unsafe.json(), { $requestLocals: {} })
  t.match(runWithLocals(unsafe.json(), requestId), UUID, 'the job gets a fresh id instead')
  const safe = await app.inject({ url: '/', headers: { 'x-raw-id': 'abc-123' } })
  t.same(safe.json(), { $requestLocals: { requestId: 'abc-123' } })
})

t.test('a forged or malformed $requestLocals is refused before the job runs, without showing its value', async (t) => {
  const forged = 'evil\r\n{"level":30,"msg":"forged"}'
  const cases: Array<[string, unknown, RegExp]> = [
    ['a string', 'req-1', /values\.\$requestLocals cannot be reopened: expected an object \{ requestId, traceId \}, as snapshotLocals\(\) writes it; found a string\./],
    ['null', null, /values\.\$requestLocals .*found null/],
    ['an array', ['req-1'], /values\.\$requestLocals .*found an array/],
    ['CR/LF in the id', { requestId: forged }, /values\.\$requestLocals\.requestId cannot be reopened: expected a request id of 1–200 characters of A-Z a-z 0-9 - _ \. : @, as snapshotLocals\(\) writes it; found a string of 33 characters \(with characters outside that set; not shown, as it may carry forged log lines\)\. The snapshot was altered on its way .*delete values\.\$requestLocals to run it under a fresh request id\.$/],
    ['a one-character id outside the set', { requestId: '\n' }, /requestId .*found a string of 1 character \(with characters outside that set;/],
    ['a too long id', { requestId: 'a'.repeat(201) }, /requestId .*found a string of 201 characters \(too long;/],
    ['an empty id', { requestId: '' }, /requestId .*found an empty string\./],
    ['a numeric id', { requestId: 42 }, /requestId .*found a number\./],
    ['an upper-case trace id', { requestId: 'r1', traceId: TRACE.toUpperCase() }, /values\.\$requestLocals\.traceId .*expected a W3C trace id of 32 lower-case hex digits, not all zero, .*found a string of 32 characters \(not shown\)/],
    ['an all-zero trace id', { requestId: 'r1', traceId: '0'.repeat(32) }, /traceId .*found a string of 32 characters/],
    ['a short trace id', { requestId: 'r1', traceId: 'abc' }, /traceId .*found a string of 3 characters/],
    ['a trace id object', { requestId: 'r1', traceId: { id: TRACE } }, /traceId .*found an instance of Object/],
    ['upper-case trace flags', { requestId: 'r1', traceId: TRACE, traceFlags: 'FF' }, /values\.\$requestLocals\.traceFlags cannot be reopened: expected W3C trace flags of 2 lower-case hex digits, .*found a string of 2 characters \(not shown\)/],
    ['numeric trace flags', { requestId: 'r1', traceId: TRACE, traceFlags: 1 }, /traceFlags .*found a number/]
  ]
  let ran = 0
  for (const [name, identity, message] of cases) {
    const error = t.throws(() => runWithLocals({ tenant: 'acme', $requestLocals: identity } as never, () => { ran++ }), { name: 'RequestLocalsError', code: 'ERR_REQUEST_LOCALS_INVALID_SNAPSHOT', message }, name) as Error
    t.notMatch(error.message, /evil|"msg"|req-1|aaaa/, `${name}: the value is not shown`)
  }
  t.equal(ran, 0, 'no job ran')
  t.equal(runWithLocals({ $requestLocals: { requestId: 'r-1', traceId: TRACE, baggage: 'from a newer producer' } } as never, requestId), 'r-1', 'fields it does not know are ignored')
})

t.test('$requestLocals is reserved: no local, default or log field can take the name', async (t) => {
  runWithLocals({}, () => {
    t.throws(() => { (requestLocal as Record<string, unknown>).$requestLocals = { requestId: 'x' } }, { code: 'ERR_REQUEST_LOCALS_RESERVED_KEY', message: /the key "\$requestLocals" cannot be stored\. .*or be taken for the request id a snapshot carries/ })
    t.equal('$requestLocals' in requestLocal, false)
    t.throws(() => addLogBindings({ $requestLocals: 1 }), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT' })
  })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(fastifyRequestLocals, { defaults: { $requestLocals: { requestId: 'x' } } as never }) }, { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /reserved key "\$requestLocals", which cannot be a local\. Rename it \(reserved: .*\$requestLocals\)/ })
})
