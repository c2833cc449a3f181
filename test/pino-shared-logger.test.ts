import t from 'tap'
import http from 'node:http'
import express from 'express'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import { expressRequestLocals } from '../src/express.js'
import fastifyRequestLocals from '../src/fastify.js'
import { requestLocal } from '../src/index.js'
import { addLogBindings, requestLogger } from '../src/pino.js'
import { Barrier, keepAliveAgent, portOf, send } from './helpers/http.js'
import { captureLogs } from './helpers/logs.js'
import './helpers/locals.js'

// Logs never leak between requests: the library changes only loggers it
// made. A request's `log` may be the application's root logger, shared by
// every request (`req.log = rootLogger` in Express, a Fastify
// childLoggerFactory that returns the root); the fields of one request must
// never reach another's lines or the root's, and the root must not grow.

const REQUESTS = 3000

async function listen (server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return portOf(server)
}

t.test('Express with req.log = rootLogger: each request\'s fields stay on its lines; the root never changes', async (t) => {
  const { logger: root, lines } = captureLogs()
  const log = requestLogger(root)
  root.info('before')
  const before = JSON.stringify(root.bindings())
  const app = express()
  app.use((req, _res, next) => { (req as typeof req & { log: typeof root }).log = root; next() })
  app.use(expressRequestLocals())
  app.use((req, _res, next) => {
    requestLocal.user = { id: String(req.headers['x-user']) }
    addLogBindings({ userId: requestLocal.user.id })
    next()
  })
  app.get('/', (req, res) => {
    const expected = req.headers['x-user']
    ;(req as typeof req & { log: typeof root }).log.info({ expected }, 'via req.log')
    log.info({ expected }, 'via requestLogger')
    log.level = 'warn'
    res.json({ level: root.level })
  })
  const port = await listen(http.createServer(app))
  const agent = keepAliveAgent(8)
  t.teardown(() => agent.destroy())
  const levels = new Set<string>()
  for (let i = 0; i < REQUESTS; i += 100) {
    const batch = await Promise.all(Array.from({ length: 100 }, (_, j) => send({ port, agent, headers: { 'x-user': `u${i + j}` } })))
    for (const { json } of batch) levels.add(json<{ level: string }>().level)
  }
  t.same([...levels], ['trace'], 'setting the level in a request never changes the root')
  root.info('after')

  t.equal(JSON.stringify(root.bindings()), before, `the root's bindings did not grow after ${REQUESTS} requests`)
  const [first, last] = [lines.find(({ msg }) => msg === 'before'), lines.find(({ msg }) => msg === 'after')]
  t.same(last, first && { ...first, msg: 'after' }, 'a line outside any request carries no request\'s fields')
  t.equal(root.level, 'trace')
  for (const msg of ['via req.log', 'via requestLogger']) {
    const own = lines.filter((line) => line.msg === msg)
    t.equal(own.length, REQUESTS)
    t.ok(own.every((line) => line.userId === line.expected), `every ${msg} line carries its own request's user`)
  }
  // A field repeated would show up as a longer line than the JSON parser keeps.
  t.ok(lines.every((line) => JSON.stringify(line).length < 200), 'no line carries more than its own request\'s fields')
})

t.test('Express with a pino-http style logger: the closing line written through res.log carries the fields', async (t) => {
  const { logger: root, lines } = captureLogs()
  const app = express()
  const barrier = new Barrier(16)
  app.use((req, res, next) => {
    const child = root.child({ reqId: String(req.headers['x-user']) })
    const pair = [req, res] as Array<{ log?: typeof root }>
    for (const holder of pair) holder.log = child
    res.on('finish', () => (res as typeof res & { log: typeof root }).log.info('request completed'))
    next()
  })
  app.use(expressRequestLocals())
  app.get('/', async (req, res) => {
    addLogBindings({ userId: String(req.headers['x-user']) })
    await barrier.arrive()
    addLogBindings({ step: 'after the barrier' })
    res.end()
  })
  const port = await listen(http.createServer(app))
  const agent = keepAliveAgent(16)
  t.teardown(() => agent.destroy())
  await Promise.all(Array.from({ length: 16 }, (_, i) => send({ port, agent, headers: { 'x-user': `u${i}` } })))
  const closing = lines.filter(({ msg }) => msg === 'request completed')
  t.equal(closing.length, 16)
  t.ok(closing.every((line) => line.userId === line.reqId && line.step === 'after the barrier'), 'each closing line carries its own request\'s fields')
  t.same(root.bindings(), {})
})

t.test('Fastify with a childLoggerFactory that returns the root: the root never changes', async (t) => {
  const { logger: root, lines } = captureLogs()
  const app = Fastify({ loggerInstance: root as FastifyBaseLogger, childLoggerFactory: (logger) => logger })
  await app.register(fastifyRequestLocals)
  t.teardown(() => app.close())
  const log = requestLogger(root)
  app.addHook('preHandler', async (request) => { addLogBindings({ userId: String(request.headers['x-user']) }) })
  app.get('/', async (request) => {
    request.log.info('via request.log')
    log.info('via requestLogger')
    return 'ok'
  })
  for (let i = 0; i < 500; i++) await app.inject({ url: '/', headers: { 'x-user': `u${i}` } })
  // Fastify logs every request through app.log itself with such a factory.
  app.log.info('after')
  t.same((app.log as typeof root).bindings(), {}, 'no field was bound on the application\'s logger')
  t.same(root.bindings(), {})
  t.same(lines.at(-1), { level: 30, msg: 'after' }, 'a line outside any request carries no request\'s fields')
  const own = lines.filter(({ msg }) => msg === 'via request.log' || msg === 'via requestLogger' || msg === 'request completed')
  t.equal(own.length, 1500)
  const byUser = new Map<unknown, number>()
  for (const line of own) byUser.set(line.userId, (byUser.get(line.userId) ?? 0) + 1)
  t.equal(byUser.size, 500, 'each request\'s lines carry its own user')
  t.ok([...byUser.values()].every((count) => count === 3), 'the closing line too')
})

t.test('Express with req.log = rootLogger: setting the level in a request changes only that request\'s logger', async (t) => {
  const { logger: root, lines } = captureLogs()
  const log = requestLogger(root)
  const app = express()
  app.use((req, _res, next) => { (req as typeof req & { log: typeof root }).log = root; next() })
  app.use(expressRequestLocals())
  app.get('/', (req, res) => {
    const quiet = req.headers['x-quiet'] === '1'
    if (quiet) log.level = 'warn'
    log.info({ quiet }, 'info line')
    res.json({ root: root.level, request: log.level, reqLog: (req as typeof req & { log: typeof root }).log.level })
  })
  const port = await listen(http.createServer(app))
  const [quiet, loud] = await Promise.all([send({ port, headers: { 'x-quiet': '1' } }), send({ port })])
  t.same(quiet.json(), { root: 'trace', request: 'warn', reqLog: 'warn' }, 'the quiet request\'s logger, and req.log, are a child at warn')
  t.same(loud.json(), { root: 'trace', request: 'trace', reqLog: 'trace' }, 'the other request keeps the root\'s level')
  t.same(lines.filter(({ msg }) => msg === 'info line').map(({ quiet }) => quiet), [false], 'only the loud request wrote its info line')
  t.equal(root.level, 'trace')
})
