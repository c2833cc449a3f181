import t from 'tap'
import http from 'node:http'
import Fastify from 'fastify'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals } from '../../src/http.js'
import fastifyRequestLocals from '../../src/fastify.js'
import { defineRequestResource } from '../../src/index.js'
import { deferred, portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// The rarer paths of endResourcesBeforeResponse and of the misuse checks.

async function listen (server: http.Server): Promise<number> {
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
}

t.test('node:http: headers already sent by other means, flushHeaders with nothing to end, a broken logger, a client gone before a failed commit', async (t) => {
  let fail = false
  const gate = deferred()
  let gated = false
  const failedGone = deferred()
  const tx = defineRequestResource({
    name: 'tx',
    create: () => 1,
    async dispose () {
      if (gated) await gate.promise
      if (gated) failedGone.resolve()
      if (fail) throw new Error('COMMIT failed')
    }
  })
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const reached = deferred()
  const gone = deferred()
  const handler = withRequestLocals(async (req, res) => {
    if (req.url === '/flush') {
      res.flushHeaders()
      res.end('flushed')
      return
    }
    await tx.get()
    if (req.url === '/sent') {
      http.ServerResponse.prototype.writeHead.call(res, 200, { 'content-type': 'text/plain' })
      res.end('sent directly')
      return
    }
    if (req.url === '/gone') {
      res.once('close', () => gone.resolve())
      reached.resolve()
    }
    res.end('ok')
  }, { endResourcesBeforeResponse: true })
  const port = await listen(http.createServer((req, res) => {
    if (req.url === '/broken-log') Object.assign(req, { log: { error: () => { throw new Error('logger down') } } })
    handler(req, res)
  }))
  t.equal((await send({ port, path: '/flush' })).text, 'flushed', 'flushHeaders with no resource passes through')
  t.equal((await send({ port, path: '/sent' })).text, 'sent directly', 'headers written past the hold: nothing held')
  fail = true
  t.equal((await send({ port, path: '/broken-log' })).status, 500)
  // Only this library's warnings: Node 26 also warns about the test runner's own loader.
  const ours = warnings.filter((warning) => String((warning as Error & { code?: unknown }).code).startsWith('ERR_REQUEST_LOCALS_'))
  t.match(ours, [{ code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' }], 'a logger that throws: a process warning instead')

  gated = true
  const req = http.request({ port, host: '127.0.0.1', path: '/gone' })
  req.on('error', () => {})
  req.end()
  await reached.promise
  req.destroy()
  // The commit fails only once the server has seen the client go.
  await gone.promise
  gate.resolve()
  await failedGone.promise
  // A turn of the loop for the failure to be answered (to nobody).
  await new Promise((resolve) => setImmediate(resolve))
  t.pass('a failed commit for a client already gone answers nothing and throws nothing')
})

t.test('Fastify: a reply sent by a hook registered before the plugin (no scope) passes onSend untouched', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.addHook('onRequest', async (_request, reply) => { await reply.send('early') })
  await app.register(fastifyRequestLocals, { endResourcesBeforeResponse: true })
  app.get('/', async () => 'late')
  t.equal((await app.inject('/')).body, 'early')
})

t.test('misuse, the rarer forms', async (t) => {
  const errors: unknown[] = []
  const fakeReq = { rawHeaders: [] }
  const mounted = (expressRequestLocals as unknown as (...args: unknown[]) => (...args: unknown[]) => void)(fakeReq, {}, (err: unknown) => { errors.push(err) })
  mounted(fakeReq, {}, (err: unknown) => { errors.push(err) })
  t.match(errors, [{ code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT' }, { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT' }], 'what the mistaken call returns fails too')
  t.throws(() => (withRequestLocals as unknown as (a: unknown, b: unknown) => void)(fakeReq, {}), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /http\.createServer\(withRequestLocals\(handler\)\)/ }, 'no response to answer: thrown only')
})
