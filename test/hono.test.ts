import http from 'node:http'
import t from 'tap'
import { Hono } from 'hono'
import { stream } from 'hono/streaming'
import { createAdaptorServer } from '@hono/node-server'
import { honoRequestLocals, type HonoRequestLocalsEnv } from '../src/hono.js'
import { defineRequestResource, requestLocal, tryGetLocals, type ScopeOutcome } from '../src/index.js'
import { deferred, portOf } from './helpers/http.js'
import './helpers/locals.js'

// The Hono adapter through Hono's own app.fetch (the Request/Response pair
// every Hono server hands it) and, where the server's part matters (a client
// going away mid-stream), over a real socket with @hono/node-server. The
// conformance suite runs the interleaving cases on Node, Bun and Deno; its
// request ids are tested with the other adapters' in test/headers/request-id/.

/** A resource recording each disposal: its value's label and outcome status. */
function recorder () {
  const disposed: string[] = []
  const resource = defineRequestResource({
    name: 'recorder',
    create: () => ({ label: requestLocal.user?.id ?? 'anonymous' }),
    dispose: (value, outcome: ScopeOutcome) => { disposed.push(`${value.label}:${outcome.status}`) }
  })
  return { disposed, resource }
}

/** A Hono app with the adapter and a middleware setting the user from x-user. */
function appWithUser (): Hono<HonoRequestLocalsEnv> {
  const app = new Hono<HonoRequestLocalsEnv>()
  app.use(honoRequestLocals())
  app.use(async (c, next) => {
    requestLocal.user = { id: c.req.header('x-user') ?? 'nobody' }
    await next()
  })
  return app
}

/** Resolves once `done()` holds; disposal runs a few promise turns after a scope ends. */
async function until (done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve))
}

t.test('the handler, later middleware and the error handler see the request\'s store; c.var.locals is that store', async (t) => {
  const app = new Hono<HonoRequestLocalsEnv>()
  app.use(honoRequestLocals({ defaults: (req) => ({ tenant: req.header('x-tenant') ?? 'public' }) }))
  app.use(async (c, next) => {
    requestLocal.user = { id: c.req.header('x-user') ?? 'nobody' }
    await next()
  })
  app.get('/', (c) => c.json({ user: requestLocal.user?.id, tenant: requestLocal.tenant, same: c.var.locals === tryGetLocals() }))
  app.get('/fail', () => { throw new Error('boom') })
  app.onError((err, c) => c.json({ message: err.message, user: requestLocal.user?.id }, 500))
  const ok = await app.request('/', { headers: { 'x-user': 'ada', 'x-tenant': 'acme' } })
  t.same(await ok.json(), { user: 'ada', tenant: 'acme', same: true })
  const failed = await app.request('/fail', { headers: { 'x-user': 'bob' } })
  t.equal(failed.status, 500)
  t.same(await failed.json(), { message: 'boom', user: 'bob' })
  t.equal(tryGetLocals(), undefined, 'nothing leaks out of the request')
})

t.test('registered twice (app and route), a request keeps one store', async (t) => {
  const app = new Hono<HonoRequestLocalsEnv>()
  const locals = honoRequestLocals()
  app.use(locals)
  app.use(async (_c, next) => {
    requestLocal.tenant = 'set before the second registration'
    await next()
  })
  app.get('/', locals, (c) => c.json({ tenant: requestLocal.tenant }))
  t.same(await (await app.request('/')).json(), { tenant: 'set before the second registration' })
})

t.test('resources are released once, in the scope, when the response is produced: completed, failed or aborted', async (t) => {
  const { disposed, resource } = recorder()
  const app = appWithUser()
  app.get('/', async (c) => { await resource.get(); await resource.get(); return c.body(null, 204) })
  app.get('/throws', async () => { await resource.get(); throw new Error('handler failed') })
  app.get('/503', async (c) => { await resource.get(); return c.body(null, 503) })
  app.onError((_err, c) => c.text('handled', 500))
  const leaving = deferred()
  app.get('/slow', async (c) => { await resource.get(); await leaving.promise; return c.body(null, 204) })
  // Each body read, as a server does.
  await (await app.request('/', { headers: { 'x-user': 'a' } })).text()
  await (await app.request('/throws', { headers: { 'x-user': 'b' } })).text()
  await (await app.request('/503', { headers: { 'x-user': 'c' } })).text()
  const client = new AbortController()
  const slow = app.fetch(new Request('http://localhost/slow', { headers: { 'x-user': 'd' }, signal: client.signal }))
  client.abort()
  leaving.resolve()
  await (await slow).text()
  await until(() => disposed.length === 4)
  t.same(disposed, ['a:completed', 'b:failed', 'c:failed', 'd:aborted'])
})

t.test('a response with a body ends its scope when the body has been read, or cancelled', async (t) => {
  const { disposed, resource } = recorder()
  const app = appWithUser()
  const more = deferred()
  app.get('/stream', async (c) => {
    await resource.get()
    return stream(c, async (out) => {
      await out.write('first,')
      await more.promise
      await out.write('second')
    })
  })
  app.get('/broken', async () => {
    await resource.get()
    return new Response(new ReadableStream({ pull (controller) { controller.error(new Error('source failed')) } }))
  })
  app.get('/no-resource', (c) => c.text('plain'))

  const read = await app.request('/stream', { headers: { 'x-user': 'a' } })
  const reader = read.body!.getReader()
  t.equal(new TextDecoder().decode((await reader.read()).value), 'first,')
  t.same(disposed, [], 'not released while the body is still being sent')
  more.resolve()
  while (!(await reader.read()).done);
  await until(() => disposed.length === 1)
  t.same(disposed, ['a:completed'])

  const cancelled = await app.request('/stream', { headers: { 'x-user': 'b' } })
  await cancelled.body!.cancel()
  await until(() => disposed.length === 2)
  t.same(disposed, ['a:completed', 'b:aborted'])

  const broken = await app.request('/broken', { headers: { 'x-user': 'c' } })
  await t.rejects(broken.text(), /source failed/)
  await until(() => disposed.length === 3)
  t.same(disposed, ['a:completed', 'b:aborted', 'c:failed'])

  t.equal(await (await app.request('/no-resource')).text(), 'plain', 'a body with no resource is passed on untouched')
})

t.test('over a socket: a client leaving mid-stream ends the scope as aborted, once', async (t) => {
  const { disposed, resource } = recorder()
  const app = new Hono<HonoRequestLocalsEnv>()
  app.use(honoRequestLocals())
  const firstChunkSent = deferred()
  app.get('/', async (c) => {
    requestLocal.user = { id: 'streamer' }
    await resource.get()
    return stream(c, async (out) => {
      await out.write('first')
      firstChunkSent.resolve()
      // Kept open until the client has gone.
      while (!out.aborted) await out.sleep(5)
    })
  })
  const server = createAdaptorServer({ fetch: app.fetch }) as http.Server
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const done = deferred()
  const client = http.get({ port: portOf(server), host: '127.0.0.1', path: '/' }, (res) => {
    res.once('data', () => { void firstChunkSent.promise.then(() => client.destroy()) })
  })
  client.on('error', () => {})
  client.on('close', () => done.resolve())
  await done.promise
  await until(() => disposed.length > 0)
  t.same(disposed, ['streamer:aborted'])
})

t.test('endResourcesBeforeResponse: resources end before the response leaves; a failed end becomes a 500', async (t) => {
  const outcomes: string[] = []
  let failCommit = false
  const transaction = defineRequestResource({
    name: 'transaction',
    create: () => ({}),
    dispose: (_tx, outcome) => {
      outcomes.push(outcome.status)
      if (failCommit && outcome.ok) throw new Error('commit failed')
    }
  })
  const app = new Hono<HonoRequestLocalsEnv>()
  app.use(honoRequestLocals({ endResourcesBeforeResponse: true }))
  app.get('/', async (c) => { await transaction.get(); return c.text(`ended before: ${outcomes.length}`) })
  app.get('/503', async (c) => { await transaction.get(); return c.body(null, 503) })
  app.get('/throws', async () => { await transaction.get(); throw new Error('handler failed') })
  const leaving = deferred()
  app.get('/slow', async (c) => { await transaction.get(); await leaving.promise; return c.text('late') })
  app.onError((_err, c) => c.text('handled', 500))

  const ok = await app.request('/')
  t.equal(ok.status, 200)
  t.equal(await ok.text(), 'ended before: 0')
  t.same(outcomes, ['completed'], 'committed before the response was handed to the server')
  await app.request('/503')
  await app.request('/throws')
  t.same(outcomes, ['completed', 'failed', 'failed'])
  const client = new AbortController()
  const slow = app.fetch(new Request('http://localhost/slow', { signal: client.signal }))
  client.abort()
  leaving.resolve()
  await slow
  t.same(outcomes, ['completed', 'failed', 'failed', 'aborted'])

  failCommit = true
  const failed = await app.request('/')
  t.equal(failed.status, 500, 'the client never sees a success whose commit failed')
  t.equal(await failed.text(), 'Internal Server Error')
})

t.test('options are validated at registration, with the 1.0 names', async (t) => {
  t.throws(() => honoRequestLocals({ requestID: {} } as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /requestID.*requestId/ })
  t.throws(() => honoRequestLocals({ upstream: { trust: 'yes' } } as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /honoRequestLocals\(options\)/ })
})
