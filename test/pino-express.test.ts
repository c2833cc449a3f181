import t from 'tap'
import http from 'node:http'
import express from 'express'
import { expressRequestLocals } from '../src/express.js'
import { requestLocal } from '../src/index.js'
import { addLogBindings, logMixin, requestLogger } from '../src/pino.js'
import { Barrier, keepAliveAgent, portOf, send } from './helpers/http.js'
import { captureLogs } from './helpers/logs.js'
import './helpers/locals.js'

// Correlated logs in Express: requestLogger (a child of root per request,
// with the request's id) and the mixin on an application's own pino
// instance, under interleaved concurrent requests.

t.test('Express: requestLogger and logMixin lines carry their own request\'s id and user; lines outside carry none', async (t) => {
  const { logger: root, lines } = captureLogs()
  const log = requestLogger(root)
  const audit = captureLogs({ mixin: logMixin({ locals: ['tenant'] }) })
  const USERS = 24
  const barrier = new Barrier(USERS)
  const app = express()
  app.use(expressRequestLocals({ upstream: { trust: true }, defaults: { tenant: 'acme' } }))
  app.use((req, _res, next) => {
    requestLocal.user = { id: String(req.headers['x-user']) }
    addLogBindings({ userId: requestLocal.user.id })
    next()
  })
  app.get('/', async (_req, res) => {
    await barrier.arrive()
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5))
    log.info('service line')
    audit.logger.info('audit line')
    res.json({ ok: true })
  })
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const agent = keepAliveAgent(USERS)
  t.teardown(() => agent.destroy())
  log.info('outside')
  audit.logger.info('outside')
  await Promise.all(Array.from({ length: USERS }, (_, i) => send({ port: portOf(server), agent, headers: { 'x-user': `u${i}`, 'x-request-id': `req-${i}` } })))

  const service = lines.filter((line) => line.msg === 'service line')
  t.equal(service.length, USERS)
  t.ok(service.every((line) => line.reqId === `req-${String(line.userId).slice(1)}`), 'every service line carries its own request\'s id and user')
  const audited = audit.lines.filter((line) => line.msg === 'audit line')
  t.equal(audited.length, USERS)
  t.ok(audited.every((line) => line.reqId === `req-${String(line.userId).slice(1)}` && line.tenant === 'acme'), 'the mixin adds the id, the added fields and the chosen locals')
  t.same(lines.find((line) => line.msg === 'outside'), { level: 30, msg: 'outside' }, 'a line outside a request carries nothing')
  t.same(audit.lines.find((line) => line.msg === 'outside'), { level: 30, msg: 'outside' })
})
