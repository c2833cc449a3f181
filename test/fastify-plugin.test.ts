import t from 'tap'
import { AsyncLocalStorage } from 'node:async_hooks'
import http from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import fastifyRequestLocals, { type FastifyRequestLocalsOptions } from '../src/fastify.js'
import { defineRequestResource, hasLocals, requestId, requestLocal, runWithLocals, tryGetLocals, type RequestLocalsError } from '../src/index.js'
import { requestLogger } from '../src/pino.js'
import { collectGarbage } from './helpers/gc.js'
import { deferred, keepAliveAgent, portOf, send } from './helpers/http.js'
import { captureLogs } from './helpers/logs.js'
import './helpers/locals.js'

async function appWith (options: FastifyRequestLocalsOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyRequestLocals, options)
  t.teardown(() => app.close())
  return app
}

t.test('request.locals is the store requestLocal reads and writes', async (t) => {
  const app = await appWith()
  app.get('/', async (request) => {
    requestLocal.tenant = 'acme'
    return { same: request.locals === tryGetLocals(), tenant: request.locals.tenant, keys: Object.keys(requestLocal), json: JSON.stringify(requestLocal) }
  })
  const res = await app.inject('/')
  t.same(res.json(), { same: true, tenant: 'acme', keys: ['tenant'], json: '{"tenant":"acme"}' }, 'the store shows only its values')
})

t.test('defaults given as an object are deep-copied per request, never shared', async (t) => {
  const app = await appWith({ defaults: { tenant: 'public', tags: ['base'] } })
  app.get('/', async () => {
    requestLocal.tags!.push('mutated')
    return { tenant: requestLocal.tenant, tags: requestLocal.tags }
  })
  const first = await app.inject('/')
  const second = await app.inject('/')
  t.same(first.json(), { tenant: 'public', tags: ['base', 'mutated'] })
  t.same(second.json(), { tenant: 'public', tags: ['base', 'mutated'] }, 'the second request started from a clean copy')
})

t.test('flat defaults are copied per request too', async (t) => {
  const app = await appWith({ defaults: { tenant: 'public' } })
  app.get('/', async () => {
    const before = requestLocal.tenant
    requestLocal.tenant = 'changed'
    return { before }
  })
  t.same((await app.inject('/')).json(), { before: 'public' })
  t.same((await app.inject('/')).json(), { before: 'public' })
})

t.test('defaults given as a function are called per request with the request', async (t) => {
  const app = await appWith({ defaults: (request) => ({ tenant: String(request.headers['x-tenant']) }) })
  app.get('/', async () => ({ tenant: requestLocal.tenant }))
  t.same((await app.inject({ url: '/', headers: { 'x-tenant': 'a' } })).json(), { tenant: 'a' })
  t.same((await app.inject({ url: '/', headers: { 'x-tenant': 'b' } })).json(), { tenant: 'b' })
})

t.test('a defaults function that returns a bad value fails that request with a clear error', async (t) => {
  const app = await appWith({ defaults: () => 'nope' as unknown as object })
  app.get('/', async () => 'unreachable')
  const res = await app.inject('/')
  t.equal(res.statusCode, 500)
  t.match(res.json(), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /the value returned by app\.register\(fastifyRequestLocals, options\)\.defaults\(request\) must be a plain object of locals; found a string/ })
})

t.test('bad options fail registration with ERR_REQUEST_LOCALS_OPTIONS', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['nope', /options\) must be a plain object; found a string/],
    [{ scopeRawEvent: true }, /^app\.register\(fastifyRequestLocals, options\): found the unknown option `scopeRawEvent`; did you mean `scopeRawEvents`\?/],
    [[1], /options\) must be a plain object; found an array/],
    [{ defaults: 42 }, /\.defaults must be a plain object or a function \(request\) => values; found a number/],
    [{ defaults: new Date() }, /found an instance of Date/],
    [{ defaults: { then: 1 } }, /reserved key "then"/],
    [{ defaults: { socket: new http.Agent() } }, /\.defaults\.socket cannot be copied per request: expected plain data .*found an instance of Agent/],
    [{ defaults: { make: () => 1 } }, /\.defaults\.make cannot be copied per request: .*found a function\. Pass defaults as a function \(request\) => \(\{ … \}\) instead/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyRequestLocals, options as object) }, { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
    await app.close()
  }
})

t.test('every hook registered after the plugin sees the request\'s own store', async (t) => {
  const app = Fastify({ connectionTimeout: 100 })
  await app.register(fastifyRequestLocals, { defaults: (request: { headers: Record<string, unknown> }) => ({ seen: String(request.headers['x-id']) }) })
  t.teardown(() => app.close())
  const seen: string[] = []
  const record = (hook: string, request: { headers: Record<string, unknown> }): void => {
    seen.push(`${String(request.headers['x-id'])} ${hook}: ${tryGetLocals()?.seen ?? 'none'}`)
  }
  const aborted = deferred()
  const timedOut = deferred()
  app.addHook('onRequest', async (request) => record('onRequest', request))
  app.addHook('preParsing', async (request) => record('preParsing', request))
  app.addHook('preValidation', async (request) => record('preValidation', request))
  app.addHook('preHandler', async (request) => record('preHandler', request))
  app.addHook('preSerialization', async (request, _reply, payload) => { record('preSerialization', request); return payload })
  app.addHook('onSend', async (request, _reply, payload) => { record('onSend', request); return payload })
  app.addHook('onResponse', async (request) => record('onResponse', request))
  app.addHook('onError', async (request) => record('onError', request))
  app.addHook('onRequestAbort', async (request) => { record('onRequestAbort', request); aborted.resolve() })
  app.addHook('onTimeout', async (request) => { record('onTimeout', request); timedOut.resolve() })
  app.post('/', async (request) => {
    record('handler', request)
    const body = request.body as { fail?: boolean, hang?: boolean }
    if (body.fail === true) throw new Error('handler failed')
    if (body.hang === true) await timedOut.promise
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = portOf(app.server)
  const post = (id: string, body: string) => send({ port, method: 'POST', headers: { 'x-id': id, 'content-type': 'application/json' }, body, chunks: 3 })

  await post('ok', '{"fine":true}')
  await post('fail', '{"fail":true}')

  // Aborted mid-body: the client sends half a body and goes away.
  const client = http.request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-id': 'abort', 'content-type': 'application/json', 'content-length': '100' } })
  client.on('error', () => {})
  client.write('{"half":', () => setImmediate(() => client.destroy()))
  await aborted.promise

  // Timed out: the handler outlives connectionTimeout.
  const hung = http.request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-id': 'timeout', 'content-type': 'application/json' } })
  hung.on('error', () => {})
  hung.end('{"hang":true}')
  await timedOut.promise

  const wrong = seen.filter((line) => { const [id, rest] = line.split(' '); return !line.endsWith(`: ${id}`) || rest === undefined })
  t.same(wrong, [], 'no hook saw another store or none')
  const hooks = (id: string) => seen.filter((line) => line.startsWith(`${id} `)).map((line) => line.split(' ')[1])
  t.same(hooks('ok'), ['onRequest:', 'preParsing:', 'preValidation:', 'preHandler:', 'handler:', 'preSerialization:', 'onSend:', 'onResponse:'])
  t.same(hooks('fail'), ['onRequest:', 'preParsing:', 'preValidation:', 'preHandler:', 'handler:', 'onError:', 'onSend:', 'onResponse:'])
  t.ok(hooks('abort').includes('onRequestAbort:'), 'onRequestAbort ran, in scope')
  t.ok(hooks('timeout').includes('onTimeout:'), 'onTimeout ran, in scope')
})

t.test('without onRequestAbort or onTimeout hooks of its own, the app gets none from the plugin', async (t) => {
  // Either hook kind makes Fastify add a listener or an object to every
  // request, so the plugin must not register one the app did not ask for.
  const perRequest = async (withPlugin: boolean): Promise<unknown> => {
    const app = Fastify({ connectionTimeout: 300 })
    if (withPlugin) await app.register(fastifyRequestLocals)
    t.teardown(() => app.close())
    app.get('/', async (request) => ({
      closeListeners: request.raw.listenerCount('close'),
      socketMeta: '_meta' in request.raw.socket
    }))
    return (await app.inject('/')).json()
  }
  t.same(await perRequest(true), await perRequest(false), 'the same listeners and socket state as without the plugin')
})

t.test('onRequestAbort and onTimeout hooks see the request\'s store however they are registered', async (t) => {
  const app = Fastify({ connectionTimeout: 100 })
  await app.register(fastifyRequestLocals, { defaults: (request: { headers: Record<string, unknown> }) => ({ seen: String(request.headers['x-id']) }) })
  const release = deferred()
  t.teardown(async () => { release.resolve(); await app.close() })
  const seen: string[] = []
  const arrivals: Array<{ count: number, done: () => void }> = []
  const record = (hook: string, request: { headers: Record<string, unknown> }): void => {
    seen.push(`${String(request.headers['x-id'])} ${hook} ${tryGetLocals()?.seen ?? 'none'}`)
    for (const waiter of arrivals) if (seen.length === waiter.count) waiter.done()
  }
  const recorded = (count: number): Promise<void> => new Promise((resolve) => {
    if (seen.length >= count) resolve()
    else arrivals.push({ count, done: resolve })
  })
  const hang = async (request: { headers: Record<string, unknown> }): Promise<object> => {
    record('handler', request)
    await release.promise
    return { late: true }
  }

  // Each way in a context of its own, so that each hook is the first of its
  // chain (a hook that runs in the store hands it on to the hooks after it).
  // In route options, an array of hooks and a single one.
  await app.register(async (context) => {
    context.post('/', {
      onRequestAbort: [async (request) => record('route-abort', request)],
      onTimeout: async (request) => record('route-timeout', request)
    }, hang)
  }, { prefix: '/route' })
  // In an encapsulated child context.
  await app.register(async (child) => {
    child.addHook('onRequestAbort', async (request) => record('child-abort', request))
    child.addHook('onTimeout', async (request) => record('child-timeout', request))
    child.post('/', hang)
  }, { prefix: '/child' })
  // In a fastify-plugin plugin, which shares its parent's instance.
  await app.register(async (context) => {
    await context.register(fp(async (shared) => {
      shared.addHook('onRequestAbort', (request, done) => { record('shared-abort', request); done() })
      shared.addHook('onTimeout', async (request) => record('shared-timeout', request))
    }))
    context.post('/', hang)
  }, { prefix: '/shared' })
  // On the instance itself, async and callback style: in an app of its own,
  // since Fastify runs an instance's hooks ahead of its children's.
  const other = Fastify({ connectionTimeout: 100 })
  await other.register(fastifyRequestLocals, { defaults: (request: { headers: Record<string, unknown> }) => ({ seen: String(request.headers['x-id']) }) })
  t.teardown(async () => { release.resolve(); await other.close() })
  other.addHook('onRequestAbort', async (request) => record('instance-abort', request))
  other.addHook('onTimeout', (request, _reply, done) => { record('instance-timeout', request); done() })
  other.post('/instance', hang)
  await app.listen({ port: 0, host: '127.0.0.1' })
  await other.listen({ port: 0, host: '127.0.0.1' })
  const portFor = (way: string): number => portOf(way === 'instance' ? other.server : app.server)

  const abort = (way: string): void => {
    const port = portFor(way)
    const path = way === 'instance' ? '/instance' : `/${way}/`
    const id = `${way}-aborted`
    const client = http.request({ port, host: '127.0.0.1', path, method: 'POST', headers: { 'x-id': id, 'content-type': 'application/json', 'content-length': '100' } })
    client.on('error', () => {})
    client.write('{"half":', () => setImmediate(() => client.destroy()))
  }
  const timeOut = (way: string): void => {
    const port = portFor(way)
    const path = way === 'instance' ? '/instance' : `/${way}/`
    const id = `${way}-timed-out`
    const client = http.request({ port, host: '127.0.0.1', path, method: 'POST', headers: { 'x-id': id, 'content-type': 'application/json' } })
    client.on('error', () => {})
    client.end('{}')
  }
  const ways = ['route', 'child', 'shared', 'instance']
  for (const way of ways) abort(way)
  await recorded(ways.length)
  for (const way of ways) timeOut(way)
  await recorded(3 * ways.length)

  t.same(seen.filter((line) => { const [id, , store] = line.split(' '); return id !== store }), [], 'every hook ran in its own request\'s store')
  const hooks = (id: string): string[] => seen.filter((line) => line.startsWith(`${id} `)).map((line) => line.split(' ')[1]!).sort()
  for (const way of ways) {
    t.same(hooks(`${way}-aborted`), [`${way}-abort`], `${way}: onRequestAbort`)
    t.same(hooks(`${way}-timed-out`), ['handler', `${way}-timeout`].sort(), `${way}: onTimeout`)
  }
})

t.test('an abort before the scope opened runs the abort hooks outside any scope', async (t) => {
  const app = Fastify()
  const arrived = deferred()
  // Registered before the plugin: this request never reaches its onRequest hook.
  app.addHook('onRequest', (_request, _reply, _done) => { arrived.resolve() })
  await app.register(fastifyRequestLocals)
  t.teardown(() => app.close())
  const aborted = deferred<string>()
  app.addHook('onRequestAbort', async (_request) => { aborted.resolve(tryGetLocals() === undefined ? 'none' : 'a store') })
  app.get('/', async () => 'unreachable')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = http.request({ port: portOf(app.server), host: '127.0.0.1', path: '/' })
  client.on('error', () => {})
  client.end()
  await arrived.promise
  client.destroy()
  t.equal(await aborted.promise, 'none')
})

t.test('Fastify still refuses malformed onRequestAbort and onTimeout hooks with its own errors', async (t) => {
  const app = await appWith()
  t.throws(() => app.addHook('onRequestAbort', (async (_request: unknown, _done: unknown) => {}) as never), { code: 'FST_ERR_HOOK_INVALID_ASYNC_HANDLER' })
  t.throws(() => app.addHook('onTimeout', (async (_request: unknown, _reply: unknown, _done: unknown) => {}) as never), { code: 'FST_ERR_HOOK_INVALID_ASYNC_HANDLER' })
  t.throws(() => app.get('/', { onRequestAbort: [42 as never] }, async () => 'x'), { code: 'FST_ERR_HOOK_INVALID_HANDLER' })
})

t.test('a server started inside runWithLocals still gives each request a fresh store', async (t) => {
  await runWithLocals({ tenant: 'outer' }, async () => {
    const app = await appWith()
    app.get('/', async () => {
      const before = requestLocal.tenant ?? null
      requestLocal.tenant = 'written by a request'
      return { before }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = portOf(app.server)
    t.same((await send({ port })).json(), { before: null })
    t.same((await send({ port })).json(), { before: null })
    t.equal(requestLocal.tenant, 'outer', 'the enclosing scope is untouched')
  })
})

t.test('other libraries\' async context is preserved, not replaced', async (t) => {
  const tracing = new AsyncLocalStorage<string>()
  const app = Fastify()
  // A tracing library that opens its context before ours.
  app.addHook('onRequest', (request, _reply, done) => { tracing.run(`trace-${String(request.headers['x-id'])}`, done) })
  await app.register(fastifyRequestLocals, { defaults: { tenant: 't' } })
  t.teardown(() => app.close())
  app.post('/', async () => ({ trace: tracing.getStore(), tenant: requestLocal.tenant }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await send({ port: portOf(app.server), method: 'POST', headers: { 'x-id': '7', 'content-type': 'application/json' }, body: '{"a":1}', chunks: 2 })
  t.same(res.json(), { trace: 'trace-7', tenant: 't' })
})

t.test('hooks registered before the plugin run outside the scope and get the strict error', async (t) => {
  const app = Fastify()
  let error: unknown
  app.addHook('onRequest', async () => {
    try { void requestLocal.user } catch (err) { error = err }
  })
  await app.register(fastifyRequestLocals)
  t.teardown(() => app.close())
  app.get('/', async () => 'ok')
  await app.inject('/')
  t.match(error, { code: 'ERR_REQUEST_LOCALS_NO_SCOPE' })
})

t.test('no store leaks out of the request: other listeners of the server and code before the plugin see none', async (t) => {
  const app = Fastify()
  const before: boolean[] = []
  const after: boolean[] = []
  app.addHook('onRequest', (_request, _reply, done) => { before.push(hasLocals()); done() })
  await app.register(fastifyRequestLocals)
  t.teardown(() => app.close())
  app.get('/', async () => { requestLocal.tenant = 'set'; return 'ok' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // Runs right after Fastify's own 'request' listener, in the same turn: a
  // scope entered with enterWith() instead of run() would still be current.
  app.server.on('request', () => { after.push(hasLocals()) })
  const agent = keepAliveAgent(1)
  t.teardown(() => agent.destroy())
  for (let i = 0; i < 3; i++) await send({ port: portOf(app.server), agent })
  t.same(before, [false, false, false], 'hooks before the plugin')
  t.same(after, [false, false, false], 'later listeners of the server')
})

// Node keeps the context of a finished response alive (an idle keep-alive
// connection's timer is created as the response finishes): a scope that
// still held its request would keep it, its reply and their raw request and
// response alive for as long. With scopeRawEvents the plugin sees the raw
// events and lets go of them on 'close'; without it, it sees no per-request
// event it could let go on at no cost (docs/semantics.md).
t.test('scopeRawEvents: a sent request is not kept alive by its scope on an idle connection; work it left running still has its locals, id and logger', async (t) => {
  const { logger: root, lines } = captureLogs()
  const log = requestLogger(root)
  const late = defineRequestResource({ name: 'late', create: () => ({}), dispose: () => {} })
  const app = Fastify({ loggerInstance: root })
  await app.register(fastifyRequestLocals, { scopeRawEvents: true })
  t.teardown(() => app.close())
  const served: Array<WeakRef<object>> = []
  const resume = deferred()
  const finished = deferred<{ tenant: string | undefined, id: string | undefined, resource: string | undefined }>()
  app.get('/', async (request, reply) => {
    requestLocal.tenant = 'acme'
    served.push(new WeakRef(request), new WeakRef(reply), new WeakRef(request.raw), new WeakRef(reply.raw))
    void resume.promise.then(async () => {
      log.info('after the response')
      const resource = await late.get().then(() => 'made', (error: RequestLocalsError) => error.code)
      finished.resolve({ tenant: requestLocal.tenant, id: requestId(), resource })
    })
    return { id: request.id }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent(1)
  t.teardown(() => agent.destroy())
  const { id } = (await send({ port: portOf(app.server), agent })).json<{ id: string }>()
  t.equal(await collectGarbage(served), 0, 'the request, the reply and their raw request and response were collected while their connection stayed open')
  resume.resolve()
  t.same(await finished.promise, { tenant: 'acme', id, resource: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
  t.match(lines.find(({ msg }) => msg === 'after the response'), { reqId: id }, 'written through the request\'s own logger')
})

t.test('the plugin is named and declares fastify 5', async (t) => {
  const app = await appWith()
  await app.ready()
  t.equal(app.hasPlugin('request-locals'), true)
})

t.test('scopeRawEvents: a custom parser reading locals on a chunked body, and raw close listeners, see the store only with it', async (t) => {
  for (const scopeRawEvents of [false, true]) {
    const app = Fastify()
    await app.register(fastifyRequestLocals, { scopeRawEvents, defaults: (request) => ({ seen: String(request.headers['x-id']) }) })
    const closed = deferred<string>()
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      done(null, { parsedIn: tryGetLocals()?.seen ?? 'none', body })
    })
    app.post('/', async (request) => {
      request.raw.once('close', () => closed.resolve(tryGetLocals()?.seen ?? 'none'))
      return request.body
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const res = await send({ port: portOf(app.server), method: 'POST', headers: { 'x-id': 'u1', 'content-type': 'application/json' }, body: '{"a":1}', chunks: 3, pause: () => new Promise((resolve) => setImmediate(resolve)) })
    const expected = scopeRawEvents ? 'u1' : 'none'
    t.equal(res.json<{ parsedIn: string }>().parsedIn, expected, `parser, scopeRawEvents: ${String(scopeRawEvents)}`)
    t.equal(await closed.promise, expected, `raw close listener, scopeRawEvents: ${String(scopeRawEvents)}`)
    await app.close()
  }
  const app = Fastify()
  await t.rejects(async () => { await app.register(fastifyRequestLocals, { scopeRawEvents: 'yes' as never }) }, { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /\.scopeRawEvents must be true or false; found a string/ })
})
