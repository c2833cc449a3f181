import t from 'tap'
import { Hono } from 'hono'
import { honoRequestLocals, type HonoRequestLocalsEnv } from '../../../src/hono.js'
import { requestId } from '../../../src/index.js'
import { fastifyWith } from './shared.js'

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

t.test('Hono: generate(req) gets Hono\'s request, a trusted upstream id is continued, echoHeader answers with it', async (t) => {
  const app = new Hono<HonoRequestLocalsEnv>()
  app.use(honoRequestLocals({
    requestId: { echoHeader: true, generate: (req) => `${req.method.toLowerCase()}-${req.header('x-tenant') ?? 'none'}` },
    upstream: { trust: true }
  }))
  app.get('/', (c) => c.json({ id: requestId() }))
  // A handler returning its own Response, whose headers Hono did not make.
  app.get('/raw', () => new Response(String(requestId())))
  const fresh = await app.request('/', { headers: { 'x-tenant': 'acme' } })
  t.same(await fresh.json(), { id: 'get-acme' })
  t.equal(fresh.headers.get('x-request-id'), 'get-acme')
  const continued = await app.request('/raw', { headers: { 'x-request-id': 'upstream-1' } })
  t.equal(await continued.text(), 'upstream-1')
  t.equal(continued.headers.get('x-request-id'), 'upstream-1')
})
