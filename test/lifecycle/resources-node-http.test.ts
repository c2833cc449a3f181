import t from 'tap'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import net from 'node:net'
import { defineRequestResource, requestLocal, type ScopeOutcome } from '../../src/index.js'
import { endScope, recordScopeError } from '../../src/lifecycle/scope-end.js'
import { attachRequest, attachResponse } from '../../src/core/scope-state.js'
import { sharedStorage, type Store } from '../../src/core/storage.js'
import { deferred, keepAliveAgent, portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// What an adapter for node:http (and Express, which runs on it) must do for
// resources to be released: attach the request and the response to the
// store it opens, and record the error when it sees one.
function serve (handler: (req: IncomingMessage, res: ServerResponse, store: Store) => void): http.Server {
  const storage = sharedStorage()
  const server = http.createServer(function openScope (req, res) {
    const store: Store = Object.assign(Object.create(null), { seen: req.headers['x-id'] })
    attachRequest(store, req)
    attachResponse(store, res)
    storage.run(store, () => handler(req, res, store))
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return server
}

async function listen (server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
}

function tracked () {
  const outcomes = new Map<string, ScopeOutcome[]>()
  const waiting = new Map<string, () => void>()
  const resource = defineRequestResource({
    name: 'conn',
    create: () => requestLocal.seen!,
    dispose (id, outcome) {
      outcomes.set(id, [...(outcomes.get(id) ?? []), outcome])
      waiting.get(id)?.()
    }
  })
  const disposed = (id: string): Promise<ScopeOutcome> => outcomes.has(id)
    ? Promise.resolve(outcomes.get(id)![0])
    : new Promise((resolve) => waiting.set(id, () => resolve(outcomes.get(id)![0])))
  return { resource, outcomes, disposed }
}

t.test('a node:http response ends its scope: completed, 5xx, recorded error, aborted', async (t) => {
  const { resource, outcomes, disposed } = tracked()
  const reached = deferred()
  const boom = new Error('route failed')
  const port = await listen(serve((req, res, store) => {
    void resource.get().then(() => {
      if (req.url === '/500') res.statusCode = 500
      if (req.url === '/error') {
        recordScopeError(store, boom)
        res.statusCode = 400
      }
      if (req.url === '/abort') {
        reached.resolve()
        return
      }
      res.end('done')
    })
  }))
  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())
  await send({ port, agent, path: '/ok', headers: { 'x-id': 'ok' } })
  await send({ port, agent, path: '/500', headers: { 'x-id': '500' } })
  await send({ port, agent, path: '/error', headers: { 'x-id': 'error' } })
  const client = http.get({ port, host: '127.0.0.1', path: '/abort', headers: { 'x-id': 'abort' } })
  client.on('error', () => {})
  await reached.promise
  client.destroy()
  t.same(await disposed('ok'), { ok: true, status: 'completed' })
  t.same(await disposed('500'), { ok: false, status: 'failed', error: undefined })
  t.same(await disposed('error'), { ok: false, status: 'failed', error: boom })
  t.same(await disposed('abort'), { ok: false, status: 'aborted' })
  t.same([...outcomes.values()].map((list) => list.length), [1, 1, 1, 1])
})

t.test('endScope ends a scope at once; the response closing later does not dispose again', async (t) => {
  const { resource, outcomes, disposed } = tracked()
  const port = await listen(serve((_req, res, store) => {
    void resource.get().then(async () => {
      await endScope(store, { ok: false, status: 'failed', error: 'adapter says so' })
      res.end('done')
    })
  }))
  t.equal((await send({ port, headers: { 'x-id': 'ended' } })).text, 'done')
  t.same(await disposed('ended'), { ok: false, status: 'failed', error: 'adapter says so' })
  t.equal(outcomes.get('ended')!.length, 1)
})

t.test('endScope on a scope that used no resource: later get() is refused, ending again does nothing', async (t) => {
  const { resource, outcomes } = tracked()
  const refused = deferred<unknown>()
  const port = await listen(serve((_req, res, store) => {
    t.equal(endScope(store, { ok: true, status: 'completed' }), undefined, 'nothing to dispose')
    void endScope(store, { ok: true, status: 'completed' })
    resource.get().catch((err: unknown) => { refused.resolve(err); res.end('done') })
  }))
  t.equal((await send({ port, headers: { 'x-id': 'early' } })).text, 'done')
  t.match(await refused.promise, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
  t.equal(outcomes.size, 0)
})

t.test('a pipelined response still queued when the connection dies is disposed as aborted', async (t) => {
  const { resource, outcomes, disposed } = tracked()
  const first = deferred()
  const queuedReady = deferred()
  const lateReady = deferred()
  const socketClosed = deferred()
  const refused = deferred<unknown>()
  const port = await listen(serve((req, res) => {
    if (req.url === '/first') { req.socket.once('close', () => socketClosed.resolve()); first.resolve(); return } // holds the connection
    if (req.url === '/queued') { void resource.get().then(() => queuedReady.resolve()); return }
    // Asks only after the connection is gone, while its response is queued.
    lateReady.resolve()
    void socketClosed.promise.then(() => resource.get()).catch((err: unknown) => refused.resolve(err))
    t.equal(res.socket, null, 'this response is queued behind the first')
  }))
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(['/first', '/queued', '/late'].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\nx-id: ${path.slice(1)}\r\n\r\n`).join(''))
  await Promise.all([first.promise, queuedReady.promise, lateReady.promise])
  socket.destroy()
  t.same(await disposed('queued'), { ok: false, status: 'aborted' })
  t.match(await refused.promise, { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
  t.same([...outcomes.keys()], ['queued'])
})

t.test('a failing dispose is logged through req.log when the request has one (pino-http)', async (t) => {
  const logged = deferred<[object, string]>()
  const resource = defineRequestResource({ name: 'conn', create: () => 1, dispose: () => { throw new Error('release failed') } })
  const port = await listen(serve((req, res) => {
    Object.assign(req, { log: { error: (details: object, message: string) => logged.resolve([details, message]) } })
    void resource.get().then(() => res.end('ok'))
  }))
  t.equal((await send({ port })).text, 'ok')
  const [details, message] = await logged.promise
  t.match(details, { err: { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' } })
  t.match(message, /"conn" failed: release failed/)
})
