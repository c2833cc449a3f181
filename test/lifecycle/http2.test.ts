import t, { type Test } from 'tap'
import http2, { type ClientHttp2Session, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import { once } from 'node:events'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { withRequestLocals } from '../../src/http.js'
import { defineRequestResource, requestLocal, type ScopeOutcome } from '../../src/index.js'
import { deferred } from '../helpers/http.js'
import { connect, portOf, request, tls } from '../helpers/h2.js'
import '../helpers/locals.js'

// HTTP/2 is a transport like HTTP/1: however a stream ends — finished, reset
// by the client, its session destroyed, a GOAWAY, a timeout — its scope ends,
// every resource it made is disposed exactly once (not ok unless the response
// completed), and a get() after the end is refused without calling create.

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = http2.constants

type Kind = 'node:http2' | 'fastify'

type Deferred = ReturnType<typeof deferred<void>>

function tracker () {
  const created: string[] = []
  const disposals = new Map<string, ScopeOutcome[]>()
  // What each late get() settled with: 'resolved' or the rejection's code.
  const late = new Map<string, string>()
  const waits = { arrived: new Map<string, Deferred>(), late: new Map<string, Deferred>(), disposed: new Map<string, Deferred>() }
  const entry = (map: Map<string, Deferred>, id: string): Deferred => {
    let d = map.get(id)
    if (d === undefined) map.set(id, d = deferred())
    return d
  }
  const resource = defineRequestResource({
    name: 'stream-tx',
    create () {
      const id = requestLocal.seen!
      created.push(id)
      return { id }
    },
    dispose (value, outcome) {
      disposals.set(value.id, [...(disposals.get(value.id) ?? []), outcome])
      entry(waits.disposed, value.id).resolve()
    }
  })
  return {
    resource,
    created,
    disposals,
    late,
    waits,
    signal: (map: Map<string, Deferred>, id: string) => entry(map, id).resolve(),
    arrived: (id: string) => entry(waits.arrived, id).promise,
    lateDone: (id: string) => entry(waits.late, id).promise,
    disposed: (id: string) => entry(waits.disposed, id).promise,
    unbalanced () {
      const wrong: string[] = []
      for (const id of new Set(created)) {
        const made = created.filter((c) => c === id).length
        const gone = disposals.get(id)?.length ?? 0
        if (made !== 1 || gone !== 1) wrong.push(`${id}: created ${made}, disposed ${gone}`)
      }
      return wrong
    }
  }
}

interface App {
  port: number
  tracker: ReturnType<typeof tracker>
}

// The request's mode (x-mode) says what its handler does:
// - ok: gets the resource and answers.
// - get-then-hold: gets the resource, then waits until the stream is gone.
// - hold-then-get: waits until the stream is gone, then calls get().
async function start (t: Test, kind: Kind, secure: boolean, timeout = 0): Promise<App> {
  const track = tracker()
  const { resource, waits } = track
  async function handle (mode: string, raw: Http2ServerResponse): Promise<string> {
    const id = requestLocal.seen!
    if (mode === 'ok') {
      await resource.get()
      return `ok ${id}`
    }
    const closed = raw.stream.destroyed ? Promise.resolve() : once(raw, 'close').then(() => {})
    if (mode === 'get-then-hold') await resource.get()
    track.signal(waits.arrived, id)
    await closed
    if (mode === 'hold-then-get') {
      await resource.get().then(() => { track.late.set(id, 'resolved') }, (err: { code?: string }) => { track.late.set(id, String(err.code)) })
      track.signal(waits.late, id)
    }
    return 'gone'
  }
  const defaults = (req: { headers: Record<string, unknown> }) => ({ seen: String(req.headers['x-id']) })
  if (kind === 'node:http2') {
    const handler = withRequestLocals(async (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const body = await handle(String(req.headers['x-mode']), res)
      if (!res.stream.destroyed) res.end(body)
    }, { defaults })
    const server = secure ? http2.createSecureServer(tls, handler) : http2.createServer(handler)
    if (timeout > 0) server.setTimeout(timeout)
    const sessions = new Set<http2.ServerHttp2Session>()
    server.on('session', (session) => { sessions.add(session); session.on('close', () => sessions.delete(session)) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => {
      for (const session of sessions) session.destroy()
      server.close(() => resolve())
    }))
    return { port: portOf(server), tracker: track }
  }
  // Typed as an HTTP/1 instance: the plugin and the route are the same on both.
  // On a session's timeout, connectionTimeout destroys the session; Fastify
  // then sets the session's timeout to http2SessionTimeout (72 s unless
  // given), so that one says when.
  const timeouts = timeout > 0 ? { connectionTimeout: timeout, http2SessionTimeout: timeout } : {}
  const app = Fastify({ http2: true, ...(secure ? { https: tls } : {}), ...timeouts } as never)
  await app.register(fastifyRequestLocals, { defaults })
  app.get('/', async (request, reply) => handle(String(request.headers['x-mode']), reply.raw as unknown as Http2ServerResponse))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { port: portOf(app.server), tracker: track }
}

async function session (t: Test, port: number, secure: boolean): Promise<ClientHttp2Session> {
  const client = await connect(port, secure)
  client.on('error', () => {})
  t.teardown(() => { client.destroy() })
  return client
}

/** Opens a stream in `mode`; errors (a reset, a destroyed session) are expected. */
function open (client: ClientHttp2Session, id: string, mode: string): http2.ClientHttp2Stream {
  const stream = client.request({ ':path': '/', 'x-id': id, 'x-mode': mode })
  stream.on('error', () => {})
  stream.resume()
  return stream
}

const aborted = { ok: false, status: 'aborted' }

for (const kind of ['node:http2', 'fastify'] as const) {
  for (const secure of [false, true]) {
    t.test(`${kind} over HTTP/2${secure ? ' with TLS' : ' cleartext'}`, async (t) => {
      t.test('a finished stream completes its scope, once', async (t) => {
        const { port, tracker } = await start(t, kind, secure)
        const client = await session(t, port, secure)
        const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => request(client, { 'x-id': `ok-${i}`, 'x-mode': 'ok' })))
        t.same(responses.map((r) => r.text), Array.from({ length: 20 }, (_, i) => `ok ok-${i}`))
        await Promise.all(responses.map((_, i) => tracker.disposed(`ok-${i}`)))
        t.same(tracker.unbalanced(), [])
        t.ok([...tracker.disposals.values()].every(([outcome]) => outcome.ok && outcome.status === 'completed'))
      })

      t.test('a stream reset by the client aborts its scope; a get() after the reset is refused without create', async (t) => {
        const { port, tracker } = await start(t, kind, secure)
        const client = await session(t, port, secure)
        const held = open(client, 'held', 'get-then-hold')
        const late = open(client, 'late', 'hold-then-get')
        await Promise.all([tracker.arrived('held'), tracker.arrived('late')])
        held.close(NGHTTP2_CANCEL)
        late.close(NGHTTP2_CANCEL)
        await Promise.all([tracker.disposed('held'), tracker.lateDone('late')])
        t.match(tracker.disposals.get('held'), [aborted])
        t.equal(tracker.late.get('late'), 'ERR_REQUEST_LOCALS_SCOPE_ENDED')
        t.same(tracker.created, ['held'], 'create was not called after the reset')
        t.same(tracker.unbalanced(), [])
      })

      t.test('a session destroyed with 70 streams in flight ends every scope, once', async (t) => {
        const { port, tracker } = await start(t, kind, secure)
        const client = await session(t, port, secure)
        const ids = Array.from({ length: 70 }, (_, i) => `s-${i}`)
        for (const [i, id] of ids.entries()) open(client, id, i % 2 === 0 ? 'get-then-hold' : 'hold-then-get')
        await Promise.all(ids.map((id) => tracker.arrived(id)))
        client.destroy(new Error('client gone'), NGHTTP2_INTERNAL_ERROR)
        await Promise.all(ids.map((id, i) => i % 2 === 0 ? tracker.disposed(id) : tracker.lateDone(id)))
        t.same(tracker.unbalanced(), [])
        t.equal(tracker.created.length, 35)
        t.ok([...tracker.disposals.values()].every(([outcome]) => outcome.status === 'aborted'), 'every scope aborted')
        t.same([...new Set(tracker.late.values())], ['ERR_REQUEST_LOCALS_SCOPE_ENDED'])
      })

      t.test('a GOAWAY from the client ends the streams it leaves', async (t) => {
        const { port, tracker } = await start(t, kind, secure)
        const client = await session(t, port, secure)
        open(client, 'g-1', 'get-then-hold')
        open(client, 'g-2', 'hold-then-get')
        await Promise.all([tracker.arrived('g-1'), tracker.arrived('g-2')])
        client.goaway(NGHTTP2_CANCEL)
        client.destroy()
        await Promise.all([tracker.disposed('g-1'), tracker.lateDone('g-2')])
        t.match(tracker.disposals.get('g-1'), [aborted])
        t.equal(tracker.late.get('g-2'), 'ERR_REQUEST_LOCALS_SCOPE_ENDED')
        t.same(tracker.unbalanced(), [])
      })

      t.test('a session that times out ends its streams', async (t) => {
        const { port, tracker } = await start(t, kind, secure, 200)
        const client = await session(t, port, secure)
        open(client, 't-1', 'get-then-hold')
        open(client, 't-2', 'hold-then-get')
        await Promise.all([tracker.disposed('t-1'), tracker.lateDone('t-2')])
        t.match(tracker.disposals.get('t-1'), [aborted])
        t.equal(tracker.late.get('t-2'), 'ERR_REQUEST_LOCALS_SCOPE_ENDED')
        t.same(tracker.unbalanced(), [])
      })
    })
  }
}

t.test('fastify over HTTP/2: onResponse hooks run in their own request\'s scope', async (t) => {
  const app = Fastify({ http2: true } as never)
  await app.register(fastifyRequestLocals, { defaults: (req) => ({ seen: String(req.headers['x-id']) }) })
  const seen = new Map<string, string>()
  const all = deferred()
  app.addHook('onResponse', async (request) => {
    seen.set(String(request.headers['x-id']), requestLocal.seen ?? 'none')
    if (seen.size === 20) all.resolve()
  })
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const client = await session(t, portOf(app.server), false)
  await Promise.all(Array.from({ length: 20 }, (_, i) => request(client, { 'x-id': `r-${i}` })))
  await all.promise
  t.same([...seen].filter(([id, local]) => id !== local), [])
})
