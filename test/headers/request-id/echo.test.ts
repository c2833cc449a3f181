import t from 'tap'
import http from 'node:http'
import { Hono } from 'hono'
import Koa from 'koa'
import { koaRequestLocals } from '../../../src/koa.js'
import { honoRequestLocals, type HonoRequestLocalsEnv } from '../../../src/hono.js'
import { requestId } from '../../../src/index.js'
import { fastifyWith } from './shared.js'
import { listen, nodeAdapters, reply } from '../../helpers/node-adapters.js'
import { send } from '../../helpers/http.js'

// requestId.echoHeader sends the id in use back in a response header, on
// every response of the request, whoever made it. The hostile-values tests
// check that what is echoed is always the validated id.

t.test('Fastify: a custom echo header, also on errors and 404s', async (t) => {
  const { app } = await fastifyWith(t, { upstream: { trust: true, requestIdHeader: 'x-correlation-id' }, requestId: { echoHeader: 'x-trace-ref' } })
  app.get('/fail', async () => { throw new Error('boom') })
  const fail = await app.inject({ url: '/fail', headers: { 'x-correlation-id': 'corr-1' } })
  t.equal(fail.statusCode, 500)
  t.equal(fail.headers['x-trace-ref'], 'corr-1')
  const missing = await app.inject({ url: '/nowhere', headers: { 'x-correlation-id': 'corr-2' } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['x-trace-ref'], 'corr-2')
})

for (const adapter of nodeAdapters.filter(({ name }) => name.startsWith('Express'))) {
  t.test(`${adapter.name}: the echo header is on the answers of Express's own error handler and 404`, async (t) => {
    const port = await adapter.start(t, (req, res) => {
      if (req.headers['x-fail'] !== undefined) throw new Error('boom')
      reply(res, { id: requestId() })
    }, { upstream: { trust: true }, requestId: { echoHeader: 'x-trace-ref' } })
    const ok = await send({ port, headers: { 'x-request-id': 'up-1' } })
    t.equal(ok.headers['x-trace-ref'], 'up-1')
    const failed = await send({ port, headers: { 'x-request-id': 'up-2', 'x-fail': '1' } })
    t.equal(failed.status, 500)
    t.equal(failed.headers['x-trace-ref'], 'up-2')
    const missing = await send({ port, path: '/nowhere', headers: { 'x-request-id': 'up-3' } })
    t.equal(missing.status, 404)
    t.equal(missing.headers['x-trace-ref'], 'up-3')
  })
}

t.test('Hono: generate(req) gets Hono\'s request, a trusted upstream id is continued, echoHeader answers with it, also on errors and 404s', async (t) => {
  const app = new Hono<HonoRequestLocalsEnv>()
  app.use(honoRequestLocals({
    requestId: { echoHeader: true, generate: (req) => `${req.method.toLowerCase()}-${req.header('x-tenant') ?? 'none'}` },
    upstream: { trust: true }
  }))
  app.get('/', (c) => c.json({ id: requestId() }))
  // A handler returning its own Response, whose headers Hono did not make.
  app.get('/raw', () => new Response(String(requestId())))
  app.get('/fail', () => { throw new Error('boom') })
  app.onError((_error, c) => c.text('failed', 500))
  const fresh = await app.request('/', { headers: { 'x-tenant': 'acme' } })
  t.same(await fresh.json(), { id: 'get-acme' })
  t.equal(fresh.headers.get('x-request-id'), 'get-acme')
  const continued = await app.request('/raw', { headers: { 'x-request-id': 'upstream-1' } })
  t.equal(await continued.text(), 'upstream-1')
  t.equal(continued.headers.get('x-request-id'), 'upstream-1')
  const failed = await app.request('/fail', { headers: { 'x-request-id': 'upstream-2' } })
  t.equal(failed.status, 500)
  t.equal(failed.headers.get('x-request-id'), 'upstream-2')
  const missing = await app.request('/nowhere', { headers: { 'x-request-id': 'upstream-3' } })
  t.equal(missing.status, 404)
  t.equal(missing.headers.get('x-request-id'), 'upstream-3')
})

t.test('Koa: generate(req) gets the Node.js request, a trusted upstream id is continued, echoHeader answers with it, also on errors and 404s', async (t) => {
  const app = new Koa()
  app.use(koaRequestLocals({
    requestId: { echoHeader: true, generate: (req) => `${String(req.method).toLowerCase()}-${String(req.headers['x-tenant'] ?? 'none')}` },
    upstream: { trust: true }
  }))
  app.use(async (ctx) => {
    if (ctx.path === '/fail') throw new Error('boom')
    if (ctx.path === '/gone') ctx.throw(410)
    if (ctx.path === '/') ctx.body = { id: requestId() }
  })
  app.silent = true
  const port = await listen(t, http.createServer(app.callback()))
  const fresh = await send({ port, path: '/', headers: { 'x-tenant': 'acme' } })
  t.same(fresh.json(), { id: 'get-acme' })
  t.equal(fresh.headers['x-request-id'], 'get-acme')
  const continued = await send({ port, path: '/', headers: { 'x-request-id': 'upstream-1' } })
  t.same(continued.json(), { id: 'upstream-1' })
  t.equal(continued.headers['x-request-id'], 'upstream-1')
  const failed = await send({ port, path: '/fail', headers: { 'x-request-id': 'upstream-2' } })
  t.equal(failed.status, 500)
  t.equal(failed.headers['x-request-id'], 'upstream-2', 'Koa\'s error handler removed every header; the echo is set again')
  const gone = await send({ port, path: '/gone', headers: { 'x-request-id': 'upstream-3' } })
  t.equal(gone.status, 410)
  t.equal(gone.headers['x-request-id'], 'upstream-3')
  const missing = await send({ port, path: '/nowhere', headers: { 'x-request-id': 'upstream-4' } })
  t.equal(missing.status, 404)
  t.equal(missing.headers['x-request-id'], 'upstream-4')
})
