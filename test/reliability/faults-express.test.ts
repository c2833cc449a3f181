import t, { type Test } from 'tap'
import http from 'node:http'
import express5, { type Express, type NextFunction, type Request, type Response } from 'express'
import express4 from 'express4'
import { expressRequestLocals } from '../../src/express.js'
import { requestLocal, tryGetLocals } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf, send, sendIncompleteBody } from '../helpers/http.js'
import { collectGarbage } from '../helpers/gc.js'
import { trackedResource } from '../helpers/tracked-resource.js'
import '../helpers/locals.js'

// Faults in Express 5 and 4 apps: whatever fails, the failing request ends
// alone, its per-request resources are disposed exactly once with the right
// outcome, and the next requests (on the same keep-alive socket when the
// server keeps it) see their own data. The request id is `x-id`; a healthy
// request answers `<own id>/<own resource's owner>`.

type Route = (req: Request, res: Response, next: NextFunction) => void

async function faultyApp (t: Test, express: () => Express, build: (app: Express, resources: ReturnType<typeof trackedResource>) => void, options: http.ServerOptions = {}) {
  const resources = trackedResource()
  const app = express()
  app.use(expressRequestLocals({ defaults: (req) => ({ seen: String(req.headers['x-id']) }) }))
  // Every request holds a resource from its first middleware on.
  app.use((_req, _res, next) => { resources.resource.get().then(() => next(), next) })
  build(app, resources)
  app.get('/', ownData(resources))
  app.post('/', express5.text(), ownData(resources))
  const server = http.createServer(options, app)
  let connections = 0
  server.on('connection', () => { connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const closed = new Promise<void>((resolve) => server.once('close', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close(); return closed })
  return { server, resources, port: portOf(server), connections: () => connections }
}

/** The route of a healthy request: its own id and its own resource's owner. */
function ownData (resources: ReturnType<typeof trackedResource>): Route {
  return function answerOwnData (_req, res, next) {
    resources.resource.get().then(({ owner }) => { res.send(`${requestLocal.seen!}/${owner}`) }, next)
  }
}

const versions: Array<[string, () => Express]> = [
  ['Express 5', () => express5()],
  ['Express 4', () => express4() as unknown as Express]
]

for (const [version, express] of versions) {
  t.test(`${version}: a throw, sync or async, in middleware, before or after the body parser, in the route or in the error handler fails that request alone`, async (t) => {
    const places = ['before-parser', 'after-parser', 'route', 'error-handler'] as const
    const boom = (where: string, mode: string): Error => new Error(`${where} ${mode} failure of ${requestLocal.seen!}`)
    const errors: string[] = []
    // Sync: thrown where Express calls the function. Async: after an await,
    // passed to next(err), which both versions handle (Express 5 also takes
    // a rejected promise; Express 4 would leave a rejection unhandled).
    const failing = (where: string): Route => function maybeFail (req, _res, next) {
      const [at, mode] = String(req.headers['x-fail']).split(':')
      if (at !== where) { next(); return }
      if (mode === 'sync') throw boom(where, mode)
      void Promise.resolve().then(() => next(boom(where, mode)))
    }
    const { resources, port, connections } = await faultyApp(t, express, (app) => {
      app.use(failing('before-parser'))
      app.use(express5.json())
      app.use(failing('after-parser'))
      app.get('/fail', failing('route'), (_req, _res, next) => { next(new Error('reached the error handler')) })
      app.use(function recordError (err: Error, req: Request, _res: Response, next: NextFunction) {
        errors.push(err.message)
        failing('error-handler')(req, _res, (again?: unknown) => next(again ?? err))
      })
    })
    const agent = keepAliveAgent(1)
    t.teardown(() => agent.destroy())
    for (const where of places) {
      for (const mode of ['sync', 'async']) {
        const id = `${where}-${mode}`
        errors.length = 0
        const failed = await send({ port, agent, path: where === 'route' || where === 'error-handler' ? '/fail' : '/', headers: { 'x-id': id, 'x-fail': `${where}:${mode}` } })
        t.equal(failed.status, 500, `${id}: 500`)
        if (where !== 'error-handler') t.same(errors, [`${where} ${mode} failure of ${id}`], `${id}: the error handler got it, thrown in its own request's scope`)
        t.equal((await send({ port, agent, headers: { 'x-id': `after-${id}` } })).text, `after-${id}/after-${id}`, `${id}: the next request sees its own data`)
        t.same(await resources.disposed(id), { ok: false, status: 'failed', error: undefined }, `${id}: disposed as failed (a 5xx was sent)`)
      }
    }
    await resources.drained()
    t.same(resources.unbalanced(), [], 'every instance disposed exactly once')
    t.equal(connections(), 1, 'every request went over one keep-alive socket')
  })

  t.test(`${version}: res.send after the response was sent, and an error after headers went out`, async (t) => {
    const { resources, port } = await faultyApp(t, express, (app) => {
      app.get('/twice', (_req, res) => {
        res.send(requestLocal.seen)
        res.send('second') // throws ERR_HTTP_HEADERS_SENT: Express passes it on
      })
      app.get('/partial', (_req, res, next) => {
        res.write('partial ')
        next(new Error('failed mid-response'))
      })
      app.use(function delegateOnceSent (err: Error, _req: Request, res: Response, next: NextFunction) {
        // Express's rule: once headers are out, leave it to the final handler.
        if (res.headersSent) { next(err); return }
        res.status(500).send(err.message)
      })
    })
    const agent = keepAliveAgent(1)
    t.teardown(() => agent.destroy())
    t.equal((await send({ port, agent, path: '/twice', headers: { 'x-id': 'twice' } })).text, 'twice', 'the first send wins')
    t.match(await resources.disposed('twice'), { ok: true, status: 'completed' }, 'the response was sent in full')
    // The second send's error reaches Express's final handler with headers
    // already sent: it destroys the connection, so the next request opens another.
    t.equal((await send({ port, headers: { 'x-id': 'after-twice' } })).text, 'after-twice/after-twice')
    // The final handler cannot answer: it destroys the connection.
    t.match(await send({ port, agent, path: '/partial', headers: { 'x-id': 'partial' } }).catch((err: Error) => err), { code: 'ECONNRESET' })
    t.same(await resources.disposed('partial'), { ok: false, status: 'aborted' }, 'a response that never ended is aborted')
    t.equal((await send({ port, agent, headers: { 'x-id': 'after-partial' } })).text, 'after-partial/after-partial')
    await resources.drained()
    t.same(resources.unbalanced(), [])
  })

  t.test(`${version}: clients that leave mid-body and mid-response: aborted, disposed once, the next requests served`, async (t) => {
    const parsing = deferred()
    const { resources, port } = await faultyApp(t, express, (app) => {
      app.post('/upload', (_req, _res, next) => { parsing.resolve(); next() }, express5.json(), (_req, res) => { res.send('unreachable') })
      app.get('/stream', (_req, res) => {
        res.write(`first chunk of ${requestLocal.seen!}\n`)
        // Never ends by itself: the client goes away first.
      })
    })
    const agent = keepAliveAgent(1)
    t.teardown(() => agent.destroy())
    const midBody = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/upload', headers: { 'x-id': 'mid-body', 'content-type': 'application/json', 'content-length': '100' } })
    midBody.on('error', () => {})
    midBody.write('{"half":')
    void parsing.promise.then(() => midBody.destroy())
    t.same(await resources.disposed('mid-body'), { ok: false, status: 'aborted' })
    t.equal((await send({ port, agent, method: 'POST', headers: { 'x-id': 'after-mid-body', 'content-type': 'text/plain' }, body: 'whole', chunks: 2 })).text, 'after-mid-body/after-mid-body')

    const midResponse = http.get({ port, host: '127.0.0.1', path: '/stream', headers: { 'x-id': 'mid-response' } }, (res) => {
      res.once('data', () => midResponse.destroy())
    })
    midResponse.on('error', () => {})
    t.same(await resources.disposed('mid-response'), { ok: false, status: 'aborted' })
    t.equal((await send({ port, agent, headers: { 'x-id': 'after-mid-response' } })).text, 'after-mid-response/after-mid-response')
    await resources.drained()
    t.same(resources.unbalanced(), [])
  })

  t.test(`${version}: requestTimeout and a socket timeout: aborted, disposed once, the next requests served`, async (t) => {
    const stalled = deferred()
    const { server, resources, port } = await faultyApp(t, express, (app) => {
      app.get('/stall', (_req, res) => {
        stalled.resolve()
        // Answers only once the connection is gone, so the answer is never sent.
        void resources.disposed('stalled').then(() => res.send('late'))
      })
    }, { requestTimeout: 200, headersTimeout: 200, connectionsCheckingInterval: 20 })
    const trickled = await sendIncompleteBody(port, 'trickled')
    t.equal(trickled, 408, 'requestTimeout: Node answers 408')
    t.same(await resources.disposed('trickled'), { ok: false, status: 'aborted' })
    t.equal((await send({ port, headers: { 'x-id': 'after-trickle' } })).text, 'after-trickle/after-trickle')

    server.setTimeout(100)
    const cut = send({ port, path: '/stall', headers: { 'x-id': 'stalled' } }).catch((err: Error) => err)
    await stalled.promise
    t.match(await cut, { code: 'ECONNRESET' }, 'server.setTimeout: the idle socket is destroyed')
    t.same(await resources.disposed('stalled'), { ok: false, status: 'aborted' })
    t.equal((await send({ port, headers: { 'x-id': 'after-stall' } })).text, 'after-stall/after-stall')
    await resources.drained()
    t.same(resources.unbalanced(), [])
  })

  for (const force of [false, true]) {
    t.test(`${version}: server.close() with requests in flight${force ? ' and closeAllConnections()' : ''}: ${force ? 'they are aborted' : 'they finish'}, each disposed once, no store kept`, async (t) => {
      const count = 4
      const arrived = Array.from({ length: count }, () => deferred())
      const release = deferred()
      const stores: Array<WeakRef<object>> = []
      const { server, resources, port } = await faultyApp(t, express, (app) => {
        app.get('/held', (req, res, next) => {
          stores.push(new WeakRef(res.locals))
          arrived[Number(req.headers['x-n'])].resolve()
          void release.promise.then(() => ownData(resources)(req, res, next))
        })
      })
      const agent = keepAliveAgent(count)
      const ids = Array.from({ length: count }, (_, n) => `in-flight-${n}`)
      const responses = ids.map((id, n) => send({ port, agent, path: '/held', headers: { 'x-id': id, 'x-n': String(n) } })
        .then(({ status, text }) => ({ status, text }), (err: { code: string }) => err.code))
      await Promise.all(arrived.map(({ promise }) => promise))
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      if (force) server.closeAllConnections()
      t.match(await send({ port, headers: { 'x-id': 'refused' } }).catch((err: Error) => err), { code: 'ECONNREFUSED' }, 'no new connection is accepted')
      release.resolve()
      if (force) {
        t.same(await Promise.all(responses), ids.map(() => 'ECONNRESET'), 'the connections were cut')
        t.same((await Promise.all(ids.map((id) => resources.disposed(id)))).map(({ status }) => status), ids.map(() => 'aborted'))
      } else {
        t.same(await Promise.all(responses), ids.map((id) => ({ status: 200, text: `${id}/${id}` })), 'each finished with its own data')
        t.same((await Promise.all(ids.map((id) => resources.disposed(id)))).map(({ status }) => status), ids.map(() => 'completed'))
      }
      // The client lets go of its kept-alive sockets, so that close() can finish.
      agent.destroy()
      await closed
      await resources.drained()
      t.same(resources.unbalanced(), [], 'each disposed exactly once')
      t.equal(tryGetLocals(), undefined, 'no store is left current')
      t.equal(await collectGarbage(stores), 0, 'every request store was garbage-collected')
    })
  }
}
