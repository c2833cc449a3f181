import t, { type Test } from 'tap'
import http from 'node:http'
import Koa3 from 'koa'
import Koa2 from 'koa2'
import { koaBody } from 'koa-body'
import multer from '@koa/multer'
import { koaRequestLocals } from '../src/koa.js'
import { hasLocals, requestLocal, tryGetLocals } from '../src/index.js'
import { Barrier, deferred, keepAliveAgent, portOf, send } from './helpers/http.js'
import { seededRandom } from './helpers/schedule.js'
import './helpers/locals.js'

// The Koa middleware on Koa 2 and 3: body parsers mounted before or after it,
// uploads, aborts, errors, ctx.state, and isolation under forced interleaving.

const currentUser = (): string => tryGetLocals()?.user?.id ?? 'none'
const userOf = (headers: http.IncomingHttpHeaders): string => String(headers['x-user'])

async function serve (t: Test, app: Koa3): Promise<number> {
  const server = http.createServer(app.callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return portOf(server)
}

function agentFor (t: Test, sockets: number): http.Agent {
  const agent = keepAliveAgent(sockets)
  t.teardown(() => agent.destroy())
  return agent
}

function multipart (boundary: string, field: string, filename: string, content: string): string {
  return `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: text/plain\r\n\r\n${content}\r\n--${boundary}--\r\n`
}

const versions = { 'koa 3': Koa3, 'koa 2': Koa2 as unknown as typeof Koa3 }

for (const [version, Koa] of Object.entries(versions)) {
  t.test(version, async (t) => {
    t.test('300 interleaved requests with chunked bodies each see only their own user, in the body parser too', async (t) => {
      const count = 300
      const random = seededRandom(Number(process.env.SEED ?? 2))
      const delays = Array.from({ length: count }, () => random() * 4)
      const barrier = new Barrier(count)
      const app = new Koa()
      app.use(koaRequestLocals())
      app.use(async (ctx, next) => {
        const user = userOf(ctx.headers)
        requestLocal.user = { id: user }
        await barrier.arrive()
        await new Promise((resolve) => setTimeout(resolve, delays[Number(user.slice(5))]))
        await next()
      })
      // koa-body's onError and the stream's 'end' run from the socket's events.
      app.use(async (ctx, next) => {
        ctx.req.on('end', () => { ctx.state.parsedIn = currentUser() })
        await next()
      })
      app.use(koaBody())
      app.use(async (ctx) => {
        await new Promise((resolve) => setImmediate(resolve))
        ctx.body = { body: ctx.request.body, parsedIn: ctx.state.parsedIn, end: currentUser() }
      })
      const port = await serve(t, app)
      const agent = agentFor(t, count)
      const responses = await Promise.all(Array.from({ length: count }, (_, i) => send({
        port,
        agent,
        method: 'POST',
        headers: { 'x-user': `user-${i}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body: JSON.stringify({ n: i }),
        chunks: 3,
        pause: () => new Promise((resolve) => setImmediate(resolve))
      })))
      const wrong = responses.flatMap((res, i) => JSON.stringify(res.json()) === JSON.stringify({ body: { n: i }, parsedIn: `user-${i}`, end: `user-${i}` }) ? [] : [`${i}: ${res.text}`])
      t.same(wrong, [], '0 mismatches')
      t.equal(hasLocals(), false)
    })

    t.test('a body parser mounted before the middleware: the handler still sees the store', async (t) => {
      const app = new Koa()
      app.use(koaBody())
      app.use(koaRequestLocals({ defaults: (ctx) => ({ tenant: ctx.get('x-tenant') }) }))
      app.use(async (ctx) => { ctx.body = { tenant: requestLocal.tenant, body: ctx.request.body } })
      const port = await serve(t, app)
      const res = await send({ port, method: 'POST', headers: { 'x-tenant': 't1', 'content-type': 'application/json' }, body: '{"a":1}' })
      t.same(res.json(), { tenant: 't1', body: { a: 1 } })
    })

    t.test('@koa/multer: the upload\'s fileFilter and storage callbacks see the request\'s user', async (t) => {
      const seen: string[] = []
      const upload = multer({
        fileFilter: (_req, _file, done) => { seen.push(currentUser()); done(null, true) }
      })
      const app = new Koa()
      app.use(koaRequestLocals())
      app.use(async (ctx, next) => { requestLocal.user = { id: userOf(ctx.headers) }; await next() })
      app.use(upload.single('file'))
      app.use(async (ctx) => { ctx.body = { user: currentUser() } })
      const port = await serve(t, app)
      const boundary = 'request-locals-boundary'
      const body = multipart(boundary, 'file', 'a.txt', 'x'.repeat(2000))
      const responses = await Promise.all(['u1', 'u2', 'u3'].map((user) => send({
        port,
        method: 'POST',
        headers: { 'x-user': user, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body,
        chunks: 4,
        pause: () => new Promise((resolve) => setImmediate(resolve))
      })))
      t.same(responses.map((res) => res.json()), [{ user: 'u1' }, { user: 'u2' }, { user: 'u3' }])
      t.same([...seen].sort(), ['u1', 'u2', 'u3'], 'each fileFilter call ran in its own request\'s scope')
    })

    t.test('ctx.state is the store: values set before the middleware are kept, and code holding ctx reads it', async (t) => {
      const errors: Array<{ state: unknown, inScope: boolean }> = []
      const app = new Koa()
      app.silent = true
      app.on('error', (_err, ctx: Koa3.Context) => { errors.push({ state: ctx.state.user, inScope: hasLocals() }) })
      app.use(async (ctx, next) => { ctx.state.early = 'kept'; await next() })
      app.use(koaRequestLocals({ defaults: { tenant: 'public' } }))
      app.use(koaRequestLocals())
      app.use(async (ctx) => {
        requestLocal.user = { id: 'u' }
        if (ctx.path === '/fail') throw new Error('boom')
        ctx.body = { same: ctx.state === tryGetLocals(), early: ctx.state.early, tenant: ctx.state.tenant, user: ctx.state.user }
      })
      const port = await serve(t, app)
      t.same((await send({ port })).json(), { same: true, early: 'kept', tenant: 'public', user: { id: 'u' } }, 'mounted twice, one store')
      t.equal((await send({ port, path: '/fail' })).status, 500)
      // Koa emits 'error' from the promise chain outside the request's async
      // context; ctx.state still reaches the request's values.
      t.same(errors, [{ state: { id: 'u' }, inScope: false }])
    })

    t.test('errors thrown after awaits reach an error middleware inside the request\'s scope', async (t) => {
      const count = 60
      const barrier = new Barrier(count)
      const app = new Koa()
      app.use(koaRequestLocals())
      app.use(async (ctx, next) => {
        try {
          await next()
        } catch (err) {
          ctx.status = 500
          ctx.body = { message: (err as Error).message, seen: currentUser() }
        }
      })
      app.use(async (ctx) => {
        requestLocal.user = { id: userOf(ctx.headers) }
        await barrier.arrive()
        if (Number(userOf(ctx.headers).slice(5)) % 2 === 0) throw new Error(`failure of ${currentUser()}`)
        ctx.body = { seen: currentUser() }
      })
      const port = await serve(t, app)
      const agent = agentFor(t, count)
      const responses = await Promise.all(Array.from({ length: count }, (_, i) => send({ port, agent, headers: { 'x-user': `user-${i}` } })))
      const wrong = responses.filter((res, i) => JSON.stringify(res.json()) !== JSON.stringify(i % 2 === 0 ? { message: `failure of user-${i}`, seen: `user-${i}` } : { seen: `user-${i}` }))
      t.same(wrong.map((res) => res.text), [])
    })

    t.test('a request aborted mid-body is seen closing, and its parser failing, inside its scope', async (t) => {
      const closed = deferred<string>()
      const failed = deferred<string>()
      const arrived = deferred()
      const app = new Koa()
      app.use(koaRequestLocals())
      app.use(async (ctx, next) => {
        requestLocal.user = { id: userOf(ctx.headers) }
        ctx.res.on('close', () => closed.resolve(currentUser()))
        arrived.resolve()
        try {
          await next()
        } catch {
          failed.resolve(currentUser())
        }
      })
      app.use(koaBody())
      const port = await serve(t, app)
      const client = http.request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-user': 'gone', 'content-type': 'application/json', 'content-length': '100' } })
      client.on('error', () => {})
      client.write('{"half":')
      await arrived.promise
      client.destroy()
      t.equal(await closed.promise, 'gone')
      t.equal(await failed.promise, 'gone')
    })

    t.test('a defaults function that throws fails its request through Koa\'s error path', async (t) => {
      const app = new Koa()
      app.silent = true
      app.use(koaRequestLocals({ defaults: () => { throw new Error('no tenant') } }))
      app.use(async (ctx) => { ctx.body = 'unreachable' })
      const port = await serve(t, app)
      t.equal((await send({ port })).status, 500)
    })
  })
}

t.test('options are validated at once, naming the key', async (t) => {
  t.throws(() => koaRequestLocals('x' as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /koaRequestLocals\(options\) must be a plain object/ })
  t.throws(() => koaRequestLocals({ default: {} } as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /koaRequestLocals\(options\): found the unknown option `default`; did you mean `defaults`\?/ })
})
