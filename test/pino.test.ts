import t from 'tap'
import { EventEmitter } from 'node:events'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import fastifyRequestLocals from '../src/fastify.js'
import { requestId, requestLocal, runWithLocals } from '../src/index.js'
import { addLogBindings, logMixin, requestLogger } from '../src/pino.js'
import { Barrier, keepAliveAgent, portOf, send } from './helpers/http.js'
import { captureLogs, type LogLine } from './helpers/logs.js'
import './helpers/locals.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const validTraceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
const randomDelay = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 4)))

async function fastifyWith (logger: FastifyBaseLogger, options: Parameters<typeof fastifyRequestLocals>[1] = {}): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: logger })
  await app.register(fastifyRequestLocals, options)
  t.teardown(() => app.close())
  return app
}

t.test('outside any scope requestLogger writes through the root, with no request fields', async (t) => {
  const { logger, lines } = captureLogs()
  const log = requestLogger(logger)
  log.info('starting')
  log.info({ port: 3000 }, 'listening on %d', 3000)
  t.same(lines.map(({ msg, reqId, port }) => ({ msg, reqId, port })), [
    { msg: 'starting', reqId: undefined, port: undefined },
    { msg: 'listening on 3000', reqId: undefined, port: 3000 }
  ])
})

t.test('in Fastify: service lines go through request.log and carry reqId and the bindings added after auth', async (t) => {
  const { logger, lines } = captureLogs()
  const log = requestLogger(logger)
  const app = await fastifyWith(logger as FastifyBaseLogger)
  app.addHook('preHandler', async (request) => {
    log.info('before auth')
    requestLocal.user = { id: String(request.headers['x-user']) }
    addLogBindings({ userId: requestLocal.user.id })
    addLogBindings({ tenant: 'acme' })
  })
  app.get('/', async (request) => {
    log.info('in the service')
    return { id: request.id }
  })
  const { id } = (await app.inject({ url: '/', headers: { 'x-user': 'alice' } })).json()
  const own = lines.filter((line) => line.reqId === id)
  t.same(own.map(({ msg, userId, tenant }) => ({ msg, userId, tenant })), [
    { msg: 'incoming request', userId: undefined, tenant: undefined },
    { msg: 'before auth', userId: undefined, tenant: undefined },
    { msg: 'in the service', userId: 'alice', tenant: 'acme' },
    { msg: 'request completed', userId: 'alice', tenant: 'acme' }
  ], 'Fastify\'s own closing line carries the bindings too')
  t.equal(lines.length, own.length, 'every line of the request carries its id')
})

t.test('in a runWithLocals scope: a child of the root with the scope\'s id, made lazily', async (t) => {
  const { logger, lines } = captureLogs()
  let children = 0
  const child = logger.child.bind(logger)
  logger.child = ((...args: Parameters<typeof child>) => { children++; return child(...args) }) as typeof logger.child
  const log = requestLogger(logger)

  runWithLocals({ tenant: 'jobs' }, () => { requestLocal.seen = 'no logging here' })
  t.equal(children, 0, 'a scope that never logs costs no child logger')

  await runWithLocals({}, async () => {
    const id = requestId()
    log.info('one')
    log.info('two')
    t.equal(children, 1, 'one child per scope, reused')
    addLogBindings({ userId: 'u1' })
    await randomDelay()
    log.info('three')
    runWithLocals({}, () => {
      log.info('nested')
      addLogBindings({ step: 'inner' })
      log.info('nested after add')
    })
    log.info('four')
    t.same(lines.map(({ msg, reqId, userId, step }) => ({ msg, reqId, userId, step })), [
      { msg: 'one', reqId: id, userId: undefined, step: undefined },
      { msg: 'two', reqId: id, userId: undefined, step: undefined },
      { msg: 'three', reqId: id, userId: 'u1', step: undefined },
      { msg: 'nested', reqId: id, userId: 'u1', step: undefined },
      { msg: 'nested after add', reqId: id, userId: 'u1', step: 'inner' },
      { msg: 'four', reqId: id, userId: 'u1', step: undefined }
    ], 'nested scopes inherit the id and bindings; their additions stay inside')
  })
})

t.test('the logger surface: every level, level, child, bindings, isLevelEnabled', async (t) => {
  const { logger, lines } = captureLogs()
  const log = requestLogger(logger, { requestIdKey: 'requestId' })
  await runWithLocals({}, async () => {
    const id = requestId()
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const) log[level](level)
    t.same(lines.map(({ msg, level, requestId }) => [msg, level, requestId]), [
      ['trace', 10, id], ['debug', 20, id], ['info', 30, id], ['warn', 40, id], ['error', 50, id], ['fatal', 60, id]
    ])
    t.same(log.bindings(), { requestId: id })
    t.equal(log.level, 'trace')
    log.level = 'warn'
    t.equal(log.isLevelEnabled('info'), false, 'level set on the scope\'s logger')
    const audit = log.child({ component: 'audit' })
    audit.warn('kept')
    t.match(lines.at(-1), { msg: 'kept', component: 'audit', requestId: id })
  })
  t.equal(log.level, 'trace', 'the root kept its level')
  t.equal(log.isLevelEnabled('info'), true)
  t.same(log.bindings(), {})
})

t.test('two roots never share a request\'s child', async (t) => {
  const a = captureLogs()
  const b = captureLogs()
  const logA = requestLogger(a.logger)
  const logB = requestLogger(b.logger, { requestIdKey: 'rid' })
  runWithLocals({}, () => {
    logA.info('to a')
    logB.info('to b')
    logA.info('to a again')
  })
  t.same(a.lines.map(({ msg }) => msg), ['to a', 'to a again'])
  t.same(b.lines.map(({ msg, rid }) => ({ msg, rid: typeof rid })), [{ msg: 'to b', rid: 'string' }])
})

t.test('a Fastify logger without setBindings: bindings go onto a child of request.log', async (t) => {
  const written: Array<Record<string, unknown>> = []
  function minimal (bindings: Record<string, unknown>): FastifyBaseLogger {
    const write = (level: string) => (obj: unknown, msg?: string) => {
      written.push(typeof obj === 'string' ? { ...bindings, level, msg: obj } : { ...bindings, ...(obj as object), level, msg })
    }
    return {
      level: 'info',
      info: write('info'),
      error: write('error'),
      warn: write('warn'),
      debug: write('debug'),
      fatal: write('fatal'),
      trace: write('trace'),
      silent: () => {},
      child: (more: Record<string, unknown>) => minimal({ ...bindings, ...more })
    } as unknown as FastifyBaseLogger
  }
  const root = minimal({})
  const log = requestLogger(root as never)
  const app = await fastifyWith(root, { requestId: {} })
  app.get('/', async (request) => {
    log.info('plain')
    addLogBindings({ userId: 'bob' })
    log.info('bound')
    addLogBindings({ role: 'admin' })
    log.info('rebound')
    return { id: request.id }
  })
  const { id } = (await app.inject('/')).json()
  t.same(written.filter(({ msg }) => msg !== 'incoming request' && msg !== 'request completed').map(({ msg, reqId, userId, role }) => ({ msg, reqId, userId, role })), [
    { msg: 'plain', reqId: id, userId: undefined, role: undefined },
    { msg: 'bound', reqId: id, userId: 'bob', role: undefined },
    { msg: 'rebound', reqId: id, userId: 'bob', role: 'admin' }
  ])
})

t.test('addLogBindings: strict outside a scope, validates its argument', async (t) => {
  t.throws(() => addLogBindings({ userId: 'x' }), { code: 'ERR_REQUEST_LOCALS_NO_SCOPE', message: /^addLogBindings\(bindings\) was called outside a request scope\..*runWithLocals/ })
  runWithLocals({}, () => {
    t.throws(() => addLogBindings(null as never), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /expects an object of log fields; found null/ })
    t.throws(() => addLogBindings(['a'] as never), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /found an array/ })
    t.throws(() => addLogBindings(JSON.parse('{"__proto__":{"polluted":true}}')), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /the field "__proto__" cannot be added/ })
  })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('bad arguments to requestLogger and logMixin are clear errors', async (t) => {
  t.throws(() => requestLogger(undefined as never), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /requestLogger\(root\) expects a pino logger; found undefined/ })
  t.throws(() => requestLogger({} as never), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /found an instance of Object/ })
  const { logger } = captureLogs()
  t.throws(() => requestLogger(logger, { requestIdKey: '' }), { message: /requestIdKey must be a non-empty string; found a string/ })
  t.throws(() => logMixin({ requestIdKey: 3 as never }), { message: /^logMixin\(options\): option requestIdKey must be a non-empty string; found a number/ })
  t.throws(() => logMixin({ locals: 'tenant' as never }), { message: /option locals must be an array of local names; found a string/ })
  t.throws(() => logMixin({ locals: [1] as never }), { message: /option locals must be an array/ })
})

t.test('logMixin: request fields inside a scope, nothing outside', async (t) => {
  const { logger: audit, lines } = captureLogs({ mixin: logMixin({ locals: ['tenant', 'seen'], traceIdKey: 'trace_id' }) })
  audit.info('at start-up')
  const { logger: appLogger } = captureLogs()
  const app = await fastifyWith(appLogger as FastifyBaseLogger, { upstream: { trust: true }, defaults: { tenant: 'public' } })
  app.addHook('preHandler', async () => { addLogBindings({ userId: 'carol' }) })
  app.get('/', async (request) => {
    audit.info({ action: 'read' }, 'audited')
    return { id: request.id }
  })
  const first = await app.inject({ url: '/', headers: { 'x-request-id': 'req-abc', traceparent: validTraceparent } })
  const second = await app.inject('/')
  runWithLocals({ tenant: 'jobs' }, () => audit.info('in a job'))
  audit.info('at shutdown')
  t.same(first.json(), { id: 'req-abc' })
  t.same(lines.map(({ msg, reqId, trace_id: trace, tenant, userId, action }) => ({ msg, reqId, trace, tenant, userId, action })), [
    { msg: 'at start-up', reqId: undefined, trace: undefined, tenant: undefined, userId: undefined, action: undefined },
    { msg: 'audited', reqId: 'req-abc', trace: '4bf92f3577b34da6a3ce929d0e0e4736', tenant: 'public', userId: 'carol', action: 'read' },
    { msg: 'audited', reqId: second.json().id, trace: undefined, tenant: 'public', userId: 'carol', action: 'read' },
    { msg: 'in a job', reqId: lines[3]?.reqId, trace: undefined, tenant: 'jobs', userId: undefined, action: undefined },
    { msg: 'at shutdown', reqId: undefined, trace: undefined, tenant: undefined, userId: undefined, action: undefined }
  ])
  t.match(lines[3].reqId, UUID, 'a job scope gets a UUID')
  t.notOk('seen' in lines[1], 'unset locals are left out')
})

t.test('logMixin with default keys', async (t) => {
  const { logger, lines } = captureLogs({ mixin: logMixin() })
  await runWithLocals({ tenant: 'x' }, async () => {
    logger.info('hi')
  })
  t.match(lines[0], { msg: 'hi', reqId: UUID })
  t.notOk('tenant' in lines[0], 'no locals unless chosen')
})

t.test('240 concurrent interleaved requests over keep-alive sockets: every service line carries its own request\'s id and user', async (t) => {
  const SOCKETS = 24
  const REQUESTS = SOCKETS * 10
  const { logger, lines } = captureLogs({ level: 'info' })
  const log = requestLogger(logger)
  const { logger: auditRoot, lines: auditLines } = captureLogs({ mixin: logMixin() })

  // Service code deep below the route: no request, no logger passed in.
  async function repository (): Promise<void> {
    await randomDelay()
    log.info('repository read')
    const emitter = new EventEmitter()
    const done = new Promise<void>((resolve) => emitter.once('row', () => { log.info('repository row'); resolve() }))
    setImmediate(() => emitter.emit('row'))
    await done
  }
  async function service (): Promise<void> {
    log.info('service start')
    await repository()
    await new Promise<void>((resolve) => process.nextTick(() => { auditRoot.info('service audit'); resolve() }))
    log.info('service end')
  }

  const app = await fastifyWith(logger as FastifyBaseLogger, { upstream: { trust: true } })
  const barrier = new Barrier(SOCKETS)
  app.addHook('preHandler', async (request) => {
    await barrier.arrive() // a whole round of requests in flight at once
    await randomDelay()
    addLogBindings({ userId: String(request.headers['x-user']) })
  })
  app.get('/', async () => {
    await service()
    return { id: requestId() }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })

  // Lines written outside any request while the requests run.
  let running = true
  function outsideTick (): void {
    log.info('outside tick')
    auditRoot.info('outside audit')
    if (running) setTimeout(outsideTick, 1)
  }
  setTimeout(outsideTick, 0)

  const agent = keepAliveAgent(SOCKETS)
  t.teardown(() => agent.destroy())
  const users = new Map<string, string>()
  await Promise.all(Array.from({ length: REQUESTS }, async (_, i) => {
    const user = `user-${i}`
    const res = await send({ port: portOf(app.server), agent, headers: { 'x-user': user, 'x-request-id': `rid-${i}` } })
    users.set(res.json<{ id: string }>().id, user)
  }))
  running = false

  t.equal(users.size, REQUESTS, 'every request had its own id')
  for (const [id, user] of users) t.equal(id, `rid-${user.slice(5)}`, 'the accepted incoming id')
  const serviceLines = lines.filter((line) => typeof line.msg === 'string' && /^(service|repository)/.test(line.msg))
  t.equal(serviceLines.length, REQUESTS * 4, 'four service lines per request')
  const wrong = serviceLines.filter((line) => users.get(line.reqId as string) !== line.userId)
  t.same(wrong, [], 'each service line carries its own request\'s id and user')
  const auditService = auditLines.filter((line) => line.msg === 'service audit')
  t.equal(auditService.length, REQUESTS)
  t.same(auditService.filter((line) => users.get(line.reqId as string) !== line.userId), [], 'the mixin too')
  const outside = [...lines, ...auditLines].filter((line: LogLine) => line.msg?.startsWith('outside'))
  t.ok(outside.length >= 2, `lines were written outside requests meanwhile (${outside.length})`)
  t.same(outside.filter((line) => 'reqId' in line || 'userId' in line), [], 'and they carry no request fields')
  const perRequest = new Map<string, number>()
  for (const line of serviceLines) perRequest.set(line.reqId as string, (perRequest.get(line.reqId as string) ?? 0) + 1)
  t.ok([...perRequest.values()].every((n) => n === 4), 'no request lost or gained a line')
})
