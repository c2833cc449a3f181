import t, { type Test } from 'tap'
import { readdirSync, writeFileSync } from 'node:fs'
import http, { type IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import express5 from 'express'
import express4 from 'express4'
import multer from 'multer'
import type { Express, NextFunction, Request, Response } from 'express'
import { expressRequestLocals } from '../src/express.js'
import { requestLocal, tryGetLocals } from '../src/index.js'
import { deferred, keepAliveAgent, portOf, send } from './helpers/http.js'
import './helpers/locals.js'

// Express-only behaviour, on Express 5 and Express 4: the order of the
// middleware relative to body parsers, error middleware fed from callbacks
// and streams, res.locals, and the middleware's own options. The behaviour
// every adapter shares is in test/conformance/.

const currentUser = (): string => tryGetLocals()?.user?.id ?? 'none'
const randomDelay = (max = 4) => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * max))
const byUser = (req: IncomingMessage): { id: string } => ({ id: String(req.headers['x-user']) })

type Probed = Request & { sawInParser?: string }

function listen (t: Test, app: Express): Promise<number> {
  const server = http.createServer(app)
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(portOf(server))))
}

function multipart (boundary: string, i: number): string {
  return [
    `--${boundary}`, 'Content-Disposition: form-data; name="n"', '', String(i),
    `--${boundary}`, `Content-Disposition: form-data; name="upload"; filename="file-${i}.txt"`, 'Content-Type: text/plain', '', `content of ${i} `.repeat(20),
    `--${boundary}--`, ''
  ].join('\r\n')
}

interface Parser {
  name: string
  mount: (express: typeof express5, dir: string) => express5.RequestHandler
  contentType: string
  body: (i: number) => string
}

const parsers: Parser[] = [
  {
    name: 'express.json()',
    mount: (express) => express.json({ verify: (req: Probed) => { req.sawInParser = currentUser() } }),
    contentType: 'application/json',
    body: (i) => JSON.stringify({ n: String(i), padding: 'x'.repeat(300) })
  },
  {
    name: 'express.urlencoded()',
    mount: (express) => express.urlencoded({ extended: false, verify: (req: Probed) => { req.sawInParser = currentUser() } }),
    contentType: 'application/x-www-form-urlencoded',
    body: (i) => `n=${i}&padding=${'x'.repeat(300)}`
  },
  {
    name: 'multer (disk storage)',
    // fileFilter and the storage's filename callback are called from busboy,
    // which reads the request stream: the places where context is lost.
    mount: (_express, dir) => multer({
      storage: multer.diskStorage({ destination: dir, filename: (_req, file, cb) => cb(null, `${currentUser()}--${file.originalname}`) }),
      fileFilter: (req: Probed, _file, cb) => { req.sawInParser = currentUser(); cb(null, true) }
    }).single('upload'),
    contentType: 'multipart/form-data; boundary=XYZ',
    body: (i) => multipart('XYZ', i)
  }
]

const versions = [['Express 5', express5], ['Express 4', express4]] as const

for (const [version, express] of versions) {
  t.test(version, async (t) => {
    for (const parser of parsers) {
      for (const position of ['before', 'after'] as const) {
        t.test(`mounted ${position} ${parser.name}, the scope survives chunked bodies`, async (t) => {
          const count = 20
          const dir = t.testdir({})
          // The rest of each body is sent only once the request has reached
          // the parser, so the parser really waits on the socket.
          const reached = new Map(Array.from({ length: count }, (_, i) => [`user-${i}`, deferred()]))
          const signal = (req: Request, _res: Response, next: NextFunction): void => {
            reached.get(String(req.headers['x-user']))!.resolve()
            next()
          }
          const locals = expressRequestLocals({ defaults: (req) => ({ user: byUser(req) }) })
          const app = express()
          if (position === 'before') app.use(locals, signal, parser.mount(express, dir))
          else app.use(signal, parser.mount(express, dir), locals)
          app.post('/', (req: Probed, res) => {
            setImmediate(() => res.json({ user: currentUser(), n: (req.body as { n: string }).n, sawInParser: req.sawInParser ?? 'none', file: req.file?.filename ?? null }))
          })
          const port = await listen(t, app)
          const agent = keepAliveAgent(10)
          t.teardown(() => agent.destroy())
          const responses = await Promise.all(Array.from({ length: count }, (_, i) => {
            let first = true
            return send({
              port,
              agent,
              method: 'POST',
              headers: { 'x-user': `user-${i}`, 'content-type': parser.contentType, 'transfer-encoding': 'chunked' },
              body: parser.body(i),
              chunks: 3,
              pause: async () => {
                if (first) await reached.get(`user-${i}`)!.promise
                first = false
                await randomDelay()
              }
            })
          }))
          const multipartParser = parser.name.startsWith('multer')
          const wrong = responses.flatMap((res, i) => {
            const body = res.json<{ user: string, n: string, sawInParser: string, file: string | null }>()
            // Code a parser runs before the middleware has run is outside any scope.
            const inParser = position === 'before' ? `user-${i}` : 'none'
            const ok = res.status === 200 && body.user === `user-${i}` && body.n === String(i) && body.sawInParser === inParser &&
              body.file === (multipartParser ? `${inParser}--file-${i}.txt` : null)
            return ok ? [] : [{ i, status: res.status, body }]
          })
          t.same(wrong, [], 'each request kept its own store through the parser')
          if (multipartParser) t.equal(readdirSync(dir).length, count, 'every upload was stored')
        })
      }
    }

    t.test('error middleware sees the store for errors passed from callbacks and streams', async (t) => {
      const app = express()
      app.use(expressRequestLocals({ defaults: (req) => ({ user: byUser(req) }) }))
      app.get('/timer', (_req, _res, next) => { setTimeout(() => next(new Error('from a timer')), Math.random() * 4) })
      app.get('/stream', (_req, res, next) => {
        const source = new PassThrough()
        source.on('error', next)
        source.pipe(res)
        setImmediate(() => source.destroy(new Error('from a stream')))
      })
      app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
        res.status(500).json({ message: err.message, user: currentUser() })
      })
      const port = await listen(t, app)
      const agent = keepAliveAgent(20)
      t.teardown(() => agent.destroy())
      const responses = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        send({ port, agent, path: i % 2 === 0 ? '/timer' : '/stream', headers: { 'x-user': `user-${i}` } })))
      t.same(responses.flatMap((res, i) => {
        const body = res.json<{ message: string, user: string }>()
        return body.user === `user-${i}` && body.message === (i % 2 === 0 ? 'from a timer' : 'from a stream') ? [] : [{ i, body }]
      }), [])
    })

    t.test('handlers that respond from callbacks and streams see the store', async (t) => {
      const dir = t.testdir({})
      writeFileSync(join(dir, 'data.txt'), 'x'.repeat(100_000))
      const app = express()
      app.use(expressRequestLocals({ defaults: (req) => ({ user: byUser(req) }) }))
      app.get('/file', (_req, res) => {
        // Responds with a file, then, from the response's 'finish' event
        // (emitted from the socket's write callbacks), reads the store.
        res.on('finish', () => { finished.set(String(_req.headers['x-user']), currentUser()) })
        // The fixture folder sits under .tap/, a dot-folder sendFile refuses by default.
        res.sendFile(join(dir, 'data.txt'), { dotfiles: 'allow' })
      })
      app.get('/generated', (_req, res) => {
        res.type('text')
        Readable.from((async function * () {
          for (let i = 0; i < 3; i++) {
            await randomDelay()
            yield `${currentUser()}\n`
          }
        })()).pipe(res)
      })
      const finished = new Map<string, string>()
      const port = await listen(t, app)
      const agent = keepAliveAgent(20)
      t.teardown(() => agent.destroy())
      const responses = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        send({ port, agent, path: i % 2 === 0 ? '/file' : '/generated', headers: { 'x-user': `user-${i}` } })))
      t.same(responses.flatMap((res, i) => {
        const ok = i % 2 === 0 ? res.text.length === 100_000 : res.text === `user-${i}\n`.repeat(3)
        return ok ? [] : [{ i, status: res.status }]
      }), [], 'every response is whole and was generated in its own scope')
      t.same([...finished].filter(([user, seen]) => user !== seen), [], 'every finish event ran in its own scope')
      t.equal(finished.size, 20)
    })

    t.test('the store is res.locals: templates and requestLocal see the same values', async (t) => {
      const dir = t.testdir({ 'page.txt': '' })
      const app = express()
      app.engine('txt', (_path: string, options: object, callback: (err: unknown, rendered?: string) => void) => {
        const { user, tenant, theme } = options as { user?: { id: string }, tenant?: string, theme?: string }
        callback(null, JSON.stringify({ user, tenant, theme }))
      })
      app.set('views', dir)
      // Written before the middleware: kept, and it wins over defaults.
      app.use((_req, res, next) => { res.locals.theme = 'dark'; res.locals.tenant = 'from-earlier'; next() })
      app.use(expressRequestLocals({ defaults: { tenant: 'public', theme: 'light' } as object }))
      app.get('/', (_req, res) => {
        requestLocal.user = { id: 'u1' }
        res.locals.seen = 'via res.locals'
        res.render('page.txt', (err: unknown, html?: string) => {
          if (err !== null) throw err
          res.json({ rendered: JSON.parse(html!), same: res.locals === tryGetLocals(), seen: requestLocal.seen })
        })
      })
      const port = await listen(t, app)
      t.same((await send({ port })).json(), {
        rendered: { user: { id: 'u1' }, tenant: 'from-earlier', theme: 'dark' },
        same: true,
        seen: 'via res.locals'
      })
    })

    t.test('mounted twice (app and router), a request keeps its one store', async (t) => {
      const app = express()
      const router = express.Router()
      const locals = expressRequestLocals()
      app.use(locals)
      app.use((_req, _res, next) => { requestLocal.tenant = 'set between'; next() })
      router.use(locals)
      router.get('/', (_req, res) => { res.json({ tenant: requestLocal.tenant ?? null }) })
      app.use('/r', router)
      const port = await listen(t, app)
      t.same((await send({ port, path: '/r' })).json(), { tenant: 'set between' })
    })

    t.test('mounted twice, a request whose client left keeps its one store in the rest of its chain', async (t) => {
      const app = express()
      const router = express.Router()
      const locals = expressRequestLocals()
      const arrived = deferred()
      const seen = deferred<boolean>()
      let first: object | undefined
      app.use(locals)
      app.use((req, _res, next) => {
        first = tryGetLocals()
        // Goes on once the request has closed and its scope let go of it.
        req.once('close', () => setImmediate(next))
        arrived.resolve()
      })
      router.use(locals)
      router.use(() => { seen.resolve(tryGetLocals() === first) })
      app.use(router)
      const port = await listen(t, app)
      const client = http.request({ port, host: '127.0.0.1' })
      client.on('error', () => {})
      client.end()
      await arrived.promise
      client.destroy()
      t.ok(await seen.promise, 'the store of the first mount')
    })

    t.test('an emit another library set on the request itself is kept, and the request\'s events still run in the store', async (t) => {
      const app = express()
      const emitted: string[] = []
      app.use((req, _res, next) => {
        const own = req.emit
        req.emit = function recordEmit (this: IncomingMessage, event: string | symbol, ...args: unknown[]) {
          emitted.push(String(event))
          return Reflect.apply(own, this, [event, ...args])
        } as typeof req.emit
        next()
      })
      app.use(expressRequestLocals({ defaults: (req) => ({ user: byUser(req) }) }))
      app.post('/', (req, res) => {
        let seen = 'unread'
        req.on('data', () => {})
        req.on('end', () => { seen = currentUser() })
        req.on('close', () => { res.json({ seen }) })
      })
      const port = await listen(t, app)
      t.same((await send({ port, method: 'POST', headers: { 'x-user': 'own-emit' }, body: 'abc', chunks: 3 })).json(), { seen: 'own-emit' })
      t.ok(emitted.includes('end'), 'the other library\'s emit still ran')
    })

    t.test('a defaults function that throws or returns a bad value fails that request through next(err)', async (t) => {
      const app = express()
      app.use(expressRequestLocals({ defaults: (req) => (req.headers['x-bad'] === 'throw' ? (() => { throw new Error('no tenant') })() : 'nope' as unknown as object) }))
      app.get('/', (_req, res) => { res.json({ unreachable: true }) })
      app.use((err: { code?: string, message: string }, _req: Request, res: Response, _next: NextFunction) => {
        res.status(500).json({ code: err.code ?? null, message: err.message, scoped: tryGetLocals() !== undefined })
      })
      const port = await listen(t, app)
      t.match((await send({ port })).json(), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /the value returned by expressRequestLocals\(options\)\.defaults\(request\) must be a plain object of locals; found a string/, scoped: false })
      t.same((await send({ port, headers: { 'x-bad': 'throw' } })).json(), { code: null, message: 'no tenant', scoped: false })
    })
  })
}

// A fresh copy of Express, so that its request and response objects are
// patched after another library's emit is put on them, as when an APM agent
// loads before the first request.
function freshExpress (): typeof express5 {
  const require = createRequire(import.meta.url)
  const root = dirname(require.resolve('express/package.json'))
  for (const key of Object.keys(require.cache)) if (key.startsWith(root)) Reflect.deleteProperty(require.cache, key)
  return require('express') as typeof express5
}

t.test('an emit another library set on Express\'s own request and response objects runs in the store, even for events nobody listens to', async (t) => {
  const express = freshExpress()
  t.not(express.request, express5.request, 'a copy of its own')
  const seen: string[] = []
  for (const [name, base] of [['req', express.request], ['res', express.response]] as const) {
    const previous = base.emit
    base.emit = function recordEmit (this: http.IncomingMessage, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'unheard') seen.push(`${name}: ${tryGetLocals()?.tenant as string | undefined ?? 'none'}`)
      return Reflect.apply(previous, this, [event, ...args]) as boolean
    } as typeof base.emit
  }
  const app = express()
  const reached = deferred<[http.IncomingMessage, http.ServerResponse]>()
  app.use(expressRequestLocals({ defaults: { tenant: 'acme' } }))
  app.get('/', (req, res) => { reached.resolve([req, res]) })
  const response = send({ port: await listen(t, app) })
  const [req, res] = await reached.promise
  // Emitted from outside any scope while the request is in flight, with no
  // listener: only the other library's emit runs, and it may look at the
  // context itself.
  req.emit('unheard')
  res.emit('unheard')
  res.end()
  await response
  t.same(seen, ['req: acme', 'res: acme'])
})

t.test('on a plain node:http server (no Express), the request\'s events run in the store', async (t) => {
  const locals = expressRequestLocals({ defaults: (req) => ({ user: byUser(req) }) })
  const server = http.createServer((req, res) => {
    locals(req as Request, res as unknown as Response, () => {
      req.on('data', () => {})
      req.on('end', () => { res.end(currentUser()) })
    })
  })
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.equal((await send({ port: portOf(server), method: 'POST', headers: { 'x-user': 'plain' }, body: 'abc', chunks: 3 })).text, 'plain')
})

t.test('bad options throw ERR_REQUEST_LOCALS_OPTIONS when the middleware is created', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['nope', /^expressRequestLocals\(options\) must be a plain object; found a string/],
    [{ default: {} }, /^expressRequestLocals\(options\): found the unknown option `default`; did you mean `defaults`\?/],
    [null, /found null/],
    [[1], /found an array/],
    [{ defaults: 42 }, /^expressRequestLocals\(options\)\.defaults must be a plain object or a function \(request\) => values; found a number/],
    [{ defaults: { then: 1 } }, /reserved key "then"/],
    [{ defaults: { agent: new http.Agent() } }, /^expressRequestLocals\(options\)\.defaults\.agent cannot be copied per request: expected plain data .*found an instance of Agent\. Pass defaults as a function/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => expressRequestLocals(options as object), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
  }
})
