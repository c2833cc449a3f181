import t from 'tap'
import http from 'node:http'
import { expressRequestLocals } from '../../src/express.js'
import { defineRequestResource, endRequestResources, requestId, requestLocal, type RequestLocalsError, type ScopeOutcome } from '../../src/index.js'
import { requestLogger } from '../../src/pino.js'
import { collectGarbage } from '../helpers/gc.js'
import { deferred, keepAliveAgent, send } from '../helpers/http.js'
import { captureLogs } from '../helpers/logs.js'
import { nodeAdapters, reply } from '../helpers/node-adapters.js'
import '../helpers/locals.js'

// The Express and node:http adapters wired to per-request resources
// (released when the response closes). Their request ids are tested with
// the other adapters' in test/headers/request-id/.

for (const adapter of nodeAdapters) {
  t.test(`${adapter.name}: per-request resources end with the response`, async (t) => {
    const disposed: ScopeOutcome[] = []
    const waiting = deferred()
    const tx = defineRequestResource({ name: 'tx', create: () => ({}), dispose: (_value, outcome) => { disposed.push(outcome); if (disposed.length === 3) waiting.resolve() } })
    const left = deferred()
    const arrived = deferred()
    const port = await adapter.start(t, async (req, res) => {
      await tx.get()
      if (req.headers['x-case'] === 'early') {
        await endRequestResources()
        reply(res, { ended: true })
      } else if (req.headers['x-case'] === 'leave') {
        req.socket.once('close', () => left.resolve())
        arrived.resolve()
        await left.promise
      } else {
        reply(res, { ok: true })
      }
    }, {})
    await send({ port })
    await send({ port, headers: { 'x-case': 'early' } })
    const client = http.request({ port, host: '127.0.0.1', headers: { 'x-case': 'leave' } })
    client.on('error', () => {})
    client.end()
    // The client leaves once the handler holds the resource.
    await arrived.promise
    client.destroy()
    await waiting.promise
    t.same(disposed.map((outcome) => outcome.status).sort(), ['aborted', 'completed', 'completed'])
  })
}

// Node keeps the context of the last thing a request did alive after it
// (an idle keep-alive connection's timer is created as the response
// finishes): a scope that still held its request would keep the request, the
// response and their buffers alive for as long, on every idle connection.
for (const adapter of nodeAdapters) {
  t.test(`${adapter.name}: a closed request is not kept alive by its scope on an idle connection; work it left running still has its locals, id and logger`, async (t) => {
    const { logger: root, lines } = captureLogs()
    const log = requestLogger(root)
    const late = defineRequestResource({ name: 'late', create: () => ({}), dispose: () => {} })
    const served: Array<WeakRef<object>> = []
    const resume = deferred()
    const finished = deferred<{ tenant: string | undefined, id: string | undefined, resource: string | undefined }>()
    const port = await adapter.start(t, (req, res) => {
      (req as http.IncomingMessage & { log?: unknown }).log = root.child({ own: 'request logger' })
      requestLocal.tenant = 'acme'
      served.push(new WeakRef(req), new WeakRef(res))
      void resume.promise.then(async () => {
        log.info('after the response')
        const resource = await late.get().then(() => 'made', (error: RequestLocalsError) => error.code)
        finished.resolve({ tenant: requestLocal.tenant, id: requestId(), resource })
      })
      reply(res, { id: requestId() })
    }, {})
    const agent = keepAliveAgent(1)
    t.teardown(() => agent.destroy())
    const { id } = (await send({ port, agent })).json<{ id: string }>()
    t.equal(await collectGarbage(served), 0, 'the request and the response were collected while their connection stayed open')
    t.equal(agent.freeSockets[Object.keys(agent.freeSockets)[0] ?? '']?.length, 1, 'the connection is still open')
    resume.resolve()
    t.same(await finished.promise, { tenant: 'acme', id, resource: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
    t.match(lines.find(({ msg }) => msg === 'after the response'), { own: 'request logger' }, 'written through the request\'s own logger')
  })
}

t.test('the Express middleware on node:http2\'s compatibility API: a request outside node:http\'s prototypes still has its events in its scope', async (t) => {
  const { default: http2 } = await import('node:http2')
  const { requestLocal, tryGetLocals } = await import('../../src/index.js')
  const middleware = expressRequestLocals()
  const server = http2.createServer((req, res) => {
    Object.assign(res, { locals: {} })
    middleware(req as never, res as never, () => {
      requestLocal.user = { id: String(req.headers['x-user']) }
      req.on('data', () => {})
      // Emitted from the stream, outside the handler's async context.
      req.on('end', () => { res.end(tryGetLocals()?.user?.id ?? 'none') })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const session = http2.connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`)
  t.teardown(() => new Promise<void>((resolve) => { session.destroy(); server.close(() => resolve()) }))
  const answers = await Promise.all(['a', 'b', 'c'].map((user) => new Promise<string>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/', 'x-user': user })
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => resolve(body))
    stream.on('error', reject)
    stream.write('part one, ')
    setImmediate(() => stream.end('part two'))
  })))
  t.same(answers, ['a', 'b', 'c'])
})
