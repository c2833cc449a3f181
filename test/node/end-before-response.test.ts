import t from 'tap'
import http, { type ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import express5, { type NextFunction, type Request, type Response } from 'express'
import express4 from 'express4'
import Fastify from 'fastify'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals } from '../../src/http.js'
import fastifyRequestLocals from '../../src/fastify.js'
import { defineRequestResource, type ScopeOutcome } from '../../src/index.js'
import { deferred, portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// endResourcesBeforeResponse: a transaction-like resource must have ended
// (committed or rolled back) before the client can see any byte of the
// response, whichever way the response is written, and a failed commit
// must reach the client as a 500, with no code in the routes.

interface Ended { outcome: ScopeOutcome['status'], headersSent: boolean }

function transactions () {
  const ended: Ended[] = []
  let failNext = false
  let gate: Promise<void> | undefined
  let current: ServerResponse | undefined
  const tx = defineRequestResource({
    name: 'tx',
    create: () => ({}),
    async dispose (_value, outcome) {
      if (gate !== undefined) await gate
      ended.push({ outcome: outcome.status, headersSent: current?.headersSent ?? true })
      if (failNext) {
        failNext = false
        throw new Error('COMMIT failed: serialization failure')
      }
    }
  })
  return {
    ended,
    tx,
    failOnce () { failNext = true },
    hold (promise: Promise<void> | undefined) { gate = promise },
    use (res: ServerResponse) {
      current = res
      return tx.get()
    }
  }
}

async function listen (server: http.Server): Promise<number> {
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
}

type Make = () => express5.Express

for (const [name, make] of [['Express 5', () => express5()], ['Express 4', () => express4() as unknown as express5.Express]] as Array<[string, Make]>) {
  t.test(`${name}: resources end before the headers, however the route answers`, async (t) => {
    const db = transactions()
    const app = make()
    app.use(expressRequestLocals({ endResourcesBeforeResponse: true }))
    app.set('etag', 'strong')
    app.get('/json', async (_req, res) => { await db.use(res); res.status(201).json({ ok: true }) })
    app.get('/send', async (_req, res) => { await db.use(res); res.send('sent') })
    app.get('/status', async (_req, res) => { await db.use(res); res.sendStatus(204) })
    app.get('/redirect', async (_req, res) => { await db.use(res); res.redirect('/json') })
    app.get('/stream', async (_req, res) => {
      await db.use(res)
      res.write('a')
      res.write('b')
      res.end('c')
    })
    app.get('/pipe', async (_req, res) => {
      await db.use(res)
      Readable.from(Array.from({ length: 200 }, (_, i) => `${i},`)).pipe(res)
    })
    app.get('/head', async (_req, res) => { await db.use(res); res.send('body for GET') })
    app.get('/throws', async (_req, res, next) => { await db.use(res); next(new Error('route failed')) })
    app.get('/none', (_req, res) => { res.send('no resource') })
    app.get('/fails', async (_req, res) => { await db.use(res); db.failOnce(); res.json({ saved: true }) })
    app.use((err: Error & { code?: string }, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).json({ error: err.message, code: err.code ?? null })
    })
    const port = await listen(http.createServer(app))

    const json = await send({ port, path: '/json' })
    t.same([json.status, json.json()], [201, { ok: true }])
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'res.json: committed before the headers')
    t.equal((await send({ port, path: '/send' })).text, 'sent')
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'res.send')
    t.equal((await send({ port, path: '/status' })).status, 204)
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'res.sendStatus')
    t.equal((await send({ port, path: '/redirect' })).status, 302)
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'res.redirect')
    t.equal((await send({ port, path: '/stream' })).text, 'abc', 'res.write chunks arrive whole and in order')
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'a streamed response: ended at the first write')
    t.equal((await send({ port, path: '/pipe' })).text, Array.from({ length: 200 }, (_, i) => `${i},`).join(''), 'a piped stream is not stalled by the held writes')
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'a piped stream')
    const head = await send({ port, path: '/head', method: 'HEAD' })
    t.same([head.status, head.text], [200, ''], 'HEAD')
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'HEAD')
    const etag = (await send({ port, path: '/head' })).headers.etag as string
    db.ended.length = 0
    t.equal((await send({ port, path: '/head', headers: { 'if-none-match': etag } })).status, 304)
    t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, '304')
    const thrown = await send({ port, path: '/throws' })
    t.same([thrown.status, thrown.json()], [500, { error: 'route failed', code: null }])
    t.same(db.ended.pop(), { outcome: 'failed', headersSent: false }, 'an error answered 5xx rolls back before the headers')
    t.equal((await send({ port, path: '/none' })).text, 'no resource', 'a request with no resource passes straight through')
    t.equal(db.ended.length, 0)

    const failed = await send({ port, path: '/fails' })
    t.equal(failed.status, 500, 'a failed COMMIT becomes a 500')
    t.match(failed.json(), { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED', error: /COMMIT failed: serialization failure/ }, 'through the application\'s error handler')
    t.notOk(failed.text.includes('saved'), 'the success body is never sent')
  })
}

t.test('Express: a client that leaves while the commit runs', async (t) => {
  const db = transactions()
  const app = express5()
  app.use(expressRequestLocals({ endResourcesBeforeResponse: true }))
  const reached = deferred()
  const gone = deferred()
  app.get('/', async (_req, res) => {
    await db.use(res)
    res.once('close', () => gone.resolve())
    reached.resolve()
    res.json({ ok: true })
  })
  const port = await listen(http.createServer(app))
  const gate = deferred()
  db.hold(gate.promise)
  const req = http.request({ port, host: '127.0.0.1', path: '/' })
  req.on('error', () => {})
  req.end()
  await reached.promise
  await new Promise((resolve) => setImmediate(resolve))
  req.destroy()
  // The commit is still held when the server sees the client go.
  await gone.promise
  gate.resolve()
  db.hold(undefined)
  while (db.ended.length === 0) await new Promise((resolve) => setImmediate(resolve))
  // A turn of the loop for a second end, or the write to the closed connection, to happen.
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(db.ended.length, 1, 'ended exactly once, no crash writing to the closed connection')
})

t.test('node:http: writeHead, a failed commit as a plain 500, and the option off', async (t) => {
  const db = transactions()
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const port = await listen(http.createServer(withRequestLocals(async (req, res) => {
    await db.use(res)
    if (req.url === '/fails') db.failOnce()
    if (req.url === '/unavailable') {
      res.writeHead(503, { 'content-type': 'text/plain' })
      res.end('later')
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' })
    res.flushHeaders()
    res.end('ok')
  }, { endResourcesBeforeResponse: true })))
  t.equal((await send({ port })).text, 'ok')
  t.same(db.ended.pop(), { outcome: 'completed', headersSent: false }, 'writeHead and flushHeaders are held too')
  t.equal((await send({ port, path: '/unavailable' })).status, 503)
  t.same(db.ended.pop(), { outcome: 'failed', headersSent: false }, 'writeHead(503): the status given to writeHead decides the outcome')
  const failed = await send({ port, path: '/fails' })
  t.same([failed.status, failed.text], [500, 'Internal Server Error\n'])
  t.match(warnings, [{ code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' }], 'without req.log, the failure is a process warning')

  const logged: unknown[] = []
  const withLog = await listen(http.createServer((req, res) => {
    Object.assign(req, { log: { error: (details: unknown) => { logged.push(details) } } })
    wrapped(req, res)
  }))
  const wrapped = withRequestLocals(async (_req, res) => { await db.use(res); db.failOnce(); res.end('ok') }, { endResourcesBeforeResponse: true })
  t.equal((await send({ port: withLog })).status, 500)
  t.match(logged, [{ err: { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' } }], 'logged through req.log when there is one')

  const off = await listen(http.createServer(withRequestLocals(async (_req, res) => { await db.use(res); res.end('ok') })))
  db.ended.length = 0
  t.equal((await send({ port: off })).text, 'ok')
  t.same(db.ended.pop(), { outcome: 'completed', headersSent: true }, 'without the option: ended after the response')
})

t.test('Fastify: the same option is an onSend hook; a failed commit goes to the error handler', async (t) => {
  const db = transactions()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { endResourcesBeforeResponse: true })
  app.get('/', async (_request, reply) => { await db.use(reply.raw); return { ok: true } })
  app.get('/fails', async (_request, reply) => { await db.use(reply.raw); db.failOnce(); return { saved: true } })
  app.get('/none', async () => 'none')
  app.get('/throws', async (_request, reply) => { await db.use(reply.raw); throw new Error('boom') })
  const ok = await app.inject('/')
  t.same(ok.json(), { ok: true })
  t.same(db.ended.pop(), { outcome: 'completed', headersSent: false })
  const failed = await app.inject('/fails')
  t.equal(failed.statusCode, 500)
  t.match(failed.json(), { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' })
  t.notOk(failed.body.includes('saved'))
  db.ended.length = 0
  t.equal((await app.inject('/none')).body, 'none')
  t.equal(db.ended.length, 0)
  t.equal((await app.inject('/throws')).statusCode, 500)
  t.same(db.ended.pop(), { outcome: 'failed', headersSent: false })
})

t.test('endResourcesBeforeResponse must be a boolean', async (t) => {
  t.throws(() => expressRequestLocals({ endResourcesBeforeResponse: 'yes' as never }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /^expressRequestLocals\(options\)\.endResourcesBeforeResponse must be true or false; found a string/ })
})
