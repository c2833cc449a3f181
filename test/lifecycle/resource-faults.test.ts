import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { withRequestLocals } from '../../src/http.js'
import { defineRequestResource, endRequestResources, hasLocals, requestId, requestLocal, runWithLocals, tryGetLocals, type ScopeOutcome } from '../../src/index.js'
import { deferred, portOf } from '../helpers/http.js'
import '../helpers/locals.js'

// Per-request resources never hang, leak or crash: whatever create and
// dispose throw or reject with, however long they take.

/** Collects the process warnings emitted while a test runs. */
function warnings (t: Test): Error[] {
  const seen: Error[] = []
  const onWarning = (warning: Error): void => { seen.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.removeListener('warning', onWarning) })
  return seen
}

/** Fails the test on any unhandled rejection while it runs (the process would exit). */
function noUnhandledRejection (t: Test): void {
  const onRejection = (reason: unknown): void => { t.fail(`unhandled rejection: ${typeof reason}`) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.removeListener('unhandledRejection', onRejection) })
}

function nextWarning (code: string): Promise<Error & { code?: string }> {
  return new Promise((resolve) => {
    process.on('warning', function onWarning (warning: Error & { code?: string }) {
      if (warning.code !== code) return
      process.removeListener('warning', onWarning)
      resolve(warning)
    })
  })
}

const revoked = Proxy.revocable({}, {})
revoked.revoke()

// Values a dependency can reject with that String() and template literals
// cannot convert, or that throw while being looked at.
const hostileValues: Array<[string, () => unknown]> = [
  ['a null-prototype object', () => Object.create(null)],
  ['a Symbol', () => Symbol('gone')],
  ['undefined', () => undefined],
  ['an object whose toString throws', () => ({ toString () { throw new Error('no string for you') } })],
  ['an object whose message getter throws', () => ({ get message () { throw new Error('no message') } })],
  ['a revoked proxy', () => revoked.proxy],
  ['null', () => null]
]

t.test('a dispose that rejects with any value never crashes the process', async (t) => {
  noUnhandledRejection(t)
  for (const [label, value] of hostileValues) {
    const resource = defineRequestResource({ name: 'hostile', create: () => 1, dispose: () => Promise.reject(value()) })
    const thrown = defineRequestResource({ name: 'thrown', create: () => 2, dispose: () => { throw value() } })
    await runWithLocals({}, async () => {
      await resource.get()
      await thrown.get()
      await t.rejects(endRequestResources(), { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', message: /"thrown", "hostile" failed/ }, `endRequestResources() with ${label}`)
    })
    // Ended by the scope's end instead: reported as a warning.
    const warned = nextWarning('ERR_REQUEST_LOCALS_DISPOSE_FAILED')
    await runWithLocals({}, () => resource.get())
    t.match(await warned, { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', message: /"hostile" failed/ }, `scope end with ${label}`)
  }
})

t.test('a create that rejects with any value rejects get() with that value, and a later get() tries again', async (t) => {
  noUnhandledRejection(t)
  for (const [label, value] of hostileValues) {
    let calls = 0
    const rejected = value()
    const resource = defineRequestResource({ name: 'flaky', create: () => ++calls === 1 ? Promise.reject(rejected) : calls })
    await runWithLocals({}, async () => {
      await resource.get().then(() => t.fail(label), (err: unknown) => { t.equal(err, rejected, label) })
      t.equal(await resource.get(), 2, `${label}: tried again`)
    })
  }
})

t.test('a dispose that never settles is reported after disposeTimeout and does not stall the others', async (t) => {
  noUnhandledRejection(t)
  const order: string[] = []
  const stuck = defineRequestResource({ name: 'stuck', disposeTimeout: 30, create: () => 'stuck', dispose: () => new Promise<void>(() => { order.push('stuck started') }) })
  const after = defineRequestResource({ name: 'after', create: () => 'after', dispose: () => { order.push('after disposed') } })
  // `after` is made first, so it is disposed after `stuck`.
  const warned = nextWarning('ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT')
  await runWithLocals({}, async () => {
    await after.get()
    await stuck.get()
  })
  t.same(order, ['stuck started', 'after disposed'])
  t.match(await warned, { code: 'ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT', message: /Disposing the request resource "stuck" did not settle within 30 ms/ })
  // Ended early by the application: its promise says so.
  await runWithLocals({}, async () => {
    await after.get()
    await stuck.get()
    await t.rejects(endRequestResources(), { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', cause: { code: 'ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT' } })
  })
})

t.test('disposeTimeout is validated when the resource is defined', async (t) => {
  for (const bad of [0, -1, 1.5, NaN, 2 ** 31, '100', null]) {
    t.throws(() => defineRequestResource({ create: () => 1, disposeTimeout: bad as number }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /disposeTimeout must be a whole number of milliseconds/ }, String(bad))
  }
  // Infinity waits for ever: a slow dispose is awaited, never reported.
  const settled = deferred()
  const patient = defineRequestResource({ name: 'patient', disposeTimeout: Infinity, create: () => 1, dispose: () => new Promise<void>((resolve) => setImmediate(resolve)).then(() => settled.resolve()) })
  await runWithLocals({}, () => patient.get())
  await settled.promise
  t.pass('a dispose without a bound is awaited')
})

function serve (t: Test, handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler)
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(portOf(server))))
}

t.test('a create that never settles does not keep the scope\'s other resources when the client leaves', async (t) => {
  noUnhandledRejection(t)
  const disposed: Array<[string, ScopeOutcome['status']]> = []
  const allDisposed = deferred()
  const lease = defineRequestResource({
    name: 'lease',
    create: () => requestLocal.seen!,
    dispose: (id, outcome) => {
      disposed.push([id, outcome.status])
      if (disposed.length === 5) allDisposed.resolve()
    }
  })
  const never = defineRequestResource({ name: 'never', disposeTimeout: 50, create: () => new Promise<string>(() => {}) })
  const arrived = new Map(Array.from({ length: 5 }, (_, i) => [`c-${i}`, deferred()]))
  const port = await serve(t, withRequestLocals(async () => {
    await lease.get()
    arrived.get(requestLocal.seen!)!.resolve()
    await never.get()
  }, { defaults: (req) => ({ seen: String(req.headers['x-id']) }) }))
  const timeouts = warnings(t)
  for (const id of arrived.keys()) {
    const client = http.request({ port, host: '127.0.0.1', headers: { 'x-id': id } })
    client.on('error', () => {})
    client.end()
    void arrived.get(id)!.promise.then(() => client.destroy())
  }
  await allDisposed.promise
  t.same(disposed.map(([id]) => id).sort(), [...arrived.keys()])
  t.ok(disposed.every(([, status]) => status === 'aborted'))
  t.ok(timeouts.some((w) => (w as { code?: string }).code === 'ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT' && /Creating the request resource "never" did not settle within 50 ms/.test(w.message)))
})

t.test('a creation that settles after the wait is disposed when it arrives, and never handed out', async (t) => {
  const made = deferred<string>()
  const disposed = deferred<[string, string]>()
  const slow = defineRequestResource({ name: 'slow', disposeTimeout: 20, create: () => made.promise, dispose: (value, outcome) => { disposed.resolve([value, outcome.status]) } })
  const timedOut = nextWarning('ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT')
  let getting!: Promise<string>
  await runWithLocals({}, () => { getting = slow.get() })
  await timedOut
  made.resolve('late')
  t.same(await disposed.promise, ['late', 'completed'])
  await t.rejects(getting, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })

  // Its dispose failing then can only be reported.
  const madeToo = deferred<string>()
  const failing = defineRequestResource({ name: 'late-failing', disposeTimeout: 20, create: () => madeToo.promise, dispose: () => Promise.reject(Symbol('late')) })
  const timedOutToo = nextWarning('ERR_REQUEST_LOCALS_DISPOSE_TIMEOUT')
  let gettingToo!: Promise<string>
  await runWithLocals({}, () => { gettingToo = failing.get() })
  await timedOutToo
  const failed = nextWarning('ERR_REQUEST_LOCALS_DISPOSE_FAILED')
  madeToo.resolve('late')
  t.match(await failed, { message: /"late-failing" failed: Symbol\(late\)/ })
  await t.rejects(gettingToo, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
})

// Requests written back to back on one connection, before any answer.
function pipelined (port: number, count: number, path = '/'): net.Socket {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(Array.from({ length: count }, (_, i) => `GET ${path} HTTP/1.1\r\nHost: x\r\nx-id: p-${i}\r\n\r\n`).join(''))
  return socket
}

t.test('12 pipelined requests on one connection using a resource print no MaxListenersExceededWarning', async (t) => {
  const seen = warnings(t)
  const disposed: string[] = []
  const allDisposed = deferred()
  const conn = defineRequestResource({
    name: 'conn',
    create: () => requestLocal.seen!,
    dispose: (id) => {
      disposed.push(id)
      if (disposed.length === 12) allDisposed.resolve()
    }
  })
  const port = await serve(t, withRequestLocals(async (_req, res) => {
    res.end(await conn.get())
  }, { defaults: (req) => ({ seen: String(req.headers['x-id']) }) }))
  const socket = pipelined(port, 12)
  let text = ''
  const answered = deferred()
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    text += chunk
    if (text.includes('p-11')) answered.resolve()
  })
  await Promise.all([allDisposed.promise, answered.promise])
  socket.destroy()
  t.equal(disposed.length, 12)
  t.equal(text.match(/HTTP\/1\.1 200/g)?.length, 12, 'every pipelined request was answered')
  await new Promise<void>((resolve) => setImmediate(resolve))
  t.same(seen.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), [])
})

t.test('a connection cut with pipelined requests queued ends their scopes, and no longer counts them in flight', async (t) => {
  const disposed = new Map<string, string>()
  const gate = deferred()
  const reached = new Map(Array.from({ length: 12 }, (_, i) => [`p-${i}`, deferred()]))
  const conn = defineRequestResource({ name: 'conn', create: () => requestLocal.seen!, dispose: (id, outcome) => { disposed.set(id, outcome.status) } })
  const closed = deferred()
  let closes = 0
  const port = await serve(t, withRequestLocals(async (req, res) => {
    req.on('close', () => { if (++closes === 12) closed.resolve() })
    await conn.get()
    reached.get(requestLocal.seen!)!.resolve()
    // The first holds the connection, so the other eleven stay queued.
    if (requestLocal.seen === 'p-0') await gate.promise
    res.end('done')
  }, { defaults: (req) => ({ seen: String(req.headers['x-id']) }) }))
  const socket = pipelined(port, 12)
  await Promise.all([...reached.values()].map((d) => d.promise))
  socket.destroy()
  await closed.promise
  gate.resolve()
  await new Promise<void>((resolve) => setImmediate(resolve))
  t.equal(disposed.size, 12, 'every scope released its resource')
  t.same([...new Set(disposed.values())], ['aborted'])
  t.doesNotThrow(() => {}, 'no request is in flight any more')
  try {
    void requestLocal.user
    t.fail('outside a scope')
  } catch (err) {
    t.notMatch((err as Error).message, /Requests are in flight/, 'the NO_SCOPE message no longer claims requests in flight')
  }
  // Dispose the handler still waiting on the gate.
  await new Promise<void>((resolve) => setImmediate(resolve))
})

t.test('Fastify: a request whose scope never opened runs onRequestAbort with no scope, never a null one', async (t) => {
  const arrived = deferred()
  const release = deferred()
  const seen = deferred<Record<string, unknown>>()
  const app = Fastify()
  // Registered before the plugin: the client leaves while it stalls.
  app.addHook('onRequest', async () => {
    arrived.resolve()
    await release.promise
  })
  await app.register(fastifyRequestLocals)
  app.addHook('onRequestAbort', async (_request) => {
    let read: string
    try {
      read = String(requestLocal.user)
    } catch (err) {
      read = String((err as { code?: string }).code ?? (err as Error).name)
    }
    seen.resolve({ hasLocals: hasLocals(), tryGetLocals: tryGetLocals(), requestId: requestId(), read })
  })
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const client = http.request({ port: portOf(app.server), host: '127.0.0.1' })
  client.on('error', () => {})
  client.end()
  await arrived.promise
  client.destroy()
  // The abort hook runs from the connection's context, inside another scope here.
  const result = await runWithLocals({ tenant: 'unrelated' }, () => seen.promise)
  release.resolve()
  t.same(result, { hasLocals: false, tryGetLocals: undefined, requestId: undefined, read: 'ERR_REQUEST_LOCALS_NO_SCOPE' })
})
