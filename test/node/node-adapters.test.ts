import t from 'tap'
import http from 'node:http'
import { expressRequestLocals } from '../../src/express.js'
import { defineRequestResource, endRequestResources, type ScopeOutcome } from '../../src/index.js'
import { deferred, send } from '../helpers/http.js'
import { nodeAdapters, reply } from '../helpers/node-adapters.js'

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
