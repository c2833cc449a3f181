import type { AsyncLocalStorage } from 'node:async_hooks'
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import http2 from 'node:http2'
import Fastify, { type FastifyRequest } from 'fastify'
import express5 from 'express'
import express4 from 'express4'
import type { NextFunction, Request, Response } from 'express'
import fastifyRequestLocals from '../../src/fastify.js'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals } from '../../src/http.js'
import { tryGetLocals } from '../../src/index.js'
import { portOf } from '../helpers/http.js'
import '../helpers/locals.js'

// Every adapter serves the same small application, described by an AppSpec,
// in its framework's own idiom: the conformance cases only ever see the spec
// and the HTTP traffic, so one case checks all four adapters.

/** What the handler is given. */
export interface RequestInfo {
  headers: IncomingHttpHeaders
  /** The JSON body, parsed by the adapter's idiomatic body parser, or null. */
  body: unknown
  /** The user id the body parser saw when the body's last chunk arrived ('none' outside a scope). */
  parsedIn: string
}

/** The application every adapter serves. */
export interface AppSpec {
  /** Passed through as the adapter's `defaults` option. */
  defaults?: object | ((request: { headers: IncomingHttpHeaders }) => object)
  /** Runs in scope before the body is read, like authentication middleware. */
  enter?: (headers: IncomingHttpHeaders) => void | Promise<void>
  /** The route at `/`: may throw synchronously or return a promise that rejects. */
  handle: (request: RequestInfo) => unknown
  /** The framework's error path: its result is sent with status 500. */
  onError?: (err: unknown) => unknown
  /** The response closed; `finished` is false when the client went away first. */
  onClose?: (headers: IncomingHttpHeaders, finished: boolean) => void
  /** Served at `/outside` by a route the adapter does not cover. */
  outside?: () => unknown
  /** Another library's context, opened for each request before the adapter. */
  trace?: AsyncLocalStorage<string>
}

export interface Adapter {
  name: string
  /** Starts the spec's app on 127.0.0.1, port 0; resolves with a closer. */
  start: (spec: AppSpec) => Promise<{ port: number, close: () => Promise<void> }>
}

/** The current user's id, or 'none' outside a scope: what the cases compare. */
export function currentUser (): string {
  return tryGetLocals()?.user?.id ?? 'none'
}

const traceOf = (headers: IncomingHttpHeaders): string => `trace-${String(headers['x-user'])}`

function errorBody (spec: AppSpec, err: unknown): unknown {
  return spec.onError === undefined ? { message: (err as Error).message } : spec.onError(err)
}

function listen (server: http.Server): Promise<{ port: number, close: () => Promise<void> }> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: portOf(server),
      close: () => new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
    }))
  })
}

// The parse point of the plain adapters: a reader of the request stream's own
// events, as every body parser is underneath.
function recordParsedIn (req: IncomingMessage & { parsedIn?: string }): void {
  req.on('end', function recordScopeAtEnd () { req.parsedIn = currentUser() })
}

function watchClose (spec: AppSpec, req: IncomingMessage, res: ServerResponse): void {
  if (spec.onClose === undefined) return
  const onClose = spec.onClose
  // writableEnded too: an HTTP/2 response reports writableFinished once its
  // stream closed, even when the client reset it.
  res.on('close', () => onClose(req.headers, res.writableEnded && res.writableFinished))
}

const fastify: Adapter = fastifyOn('fastify', {})

function fastifyOn (name: string, options: object): Adapter {
  return {
    name,
    async start (spec) {
      const app = Fastify(options)
      if (spec.trace !== undefined) {
        const trace = spec.trace
        app.addHook('onRequest', (request, _reply, done) => { trace.run(traceOf(request.headers), done) })
      }
      // Registered before the plugin, so it runs outside the scope.
      app.addHook('onRequest', async (request, reply) => {
        if (request.url === '/outside') return reply.send(spec.outside?.())
      })
      // scopeRawEvents: the raw request's events (a parser's chunks, a client's
      // disconnect) run in the scope, as they do in the node:http adapters.
      await app.register(fastifyRequestLocals, { defaults: spec.defaults as never, scopeRawEvents: true })
      app.addHook('onRequest', async (request, reply) => {
        watchClose(spec, request.raw, reply.raw)
        await spec.enter?.(request.headers)
      })
      app.addContentTypeParser('application/json', { parseAs: 'string' }, (request: FastifyRequest & { parsedIn?: string }, body, done) => {
        request.parsedIn = currentUser()
        try {
          done(null, JSON.parse(body as string))
        } catch (err) {
          done(err as Error)
        }
      })
      app.setErrorHandler(async (err, _request, reply) => reply.code(500).send(errorBody(spec, err)))
      const route = async (request: FastifyRequest & { parsedIn?: string }) =>
        spec.handle({ headers: request.headers, body: request.body ?? null, parsedIn: request.parsedIn ?? 'unparsed' })
      app.get('/', route)
      app.post('/', route)
      await app.listen({ port: 0, host: '127.0.0.1' })
      return { port: portOf(app.server as http.Server), close: () => app.close() }
    }
  }
}

function expressAdapter (name: string, express: typeof express5): Adapter {
  return {
    name,
    async start (spec) {
      const app = express()
      if (spec.trace !== undefined) {
        const trace = spec.trace
        app.use((req, _res, next) => { trace.run(traceOf(req.headers), next) })
      }
      // Mounted before the middleware, so it runs outside the scope.
      app.get('/outside', (_req, res) => { res.json(spec.outside?.()) })
      app.use(expressRequestLocals({ defaults: spec.defaults as never }))
      app.use((req: Request, res: Response, next: NextFunction) => {
        watchClose(spec, req, res)
        recordParsedIn(req)
        Promise.resolve(spec.enter?.(req.headers)).then(() => next(), next)
      })
      app.use(express.json())
      app.all('/', (req: Request & { parsedIn?: string }, res: Response, next: NextFunction) => {
        // Called synchronously, so a throw takes Express's own catch path.
        const result = spec.handle({ headers: req.headers, body: req.body ?? null, parsedIn: req.parsedIn ?? 'unparsed' })
        Promise.resolve(result).then((value) => { res.json(value) }, next)
      })
      app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
        res.status(500).json(errorBody(spec, err))
      })
      return listen(http.createServer(app))
    }
  }
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(value))
}

// A plain reader of the request stream: the events, not an async iterator,
// because the events are where Node leaves the request's context.
function readJson (req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { text += chunk })
    req.on('end', () => {
      try {
        resolve(text === '' ? null : JSON.parse(text))
      } catch (err) {
        reject(err)
      }
    })
    req.on('error', reject)
  })
}

const nodeHttp: Adapter = {
  name: 'node:http',
  async start (spec) {
    return listen(http.createServer(nodeHandler(spec)))
  }
}

// The node:http application; node:http2's compatibility API runs it as is.
function nodeHandler (spec: AppSpec): (req: IncomingMessage, res: ServerResponse) => void {
  const scoped = withRequestLocals(async (req: IncomingMessage & { parsedIn?: string }, res: ServerResponse) => {
    watchClose(spec, req, res)
    recordParsedIn(req)
    try {
      await spec.enter?.(req.headers)
      const body = await readJson(req)
      sendJson(res, 200, await spec.handle({ headers: req.headers, body, parsedIn: req.parsedIn ?? 'unparsed' }))
    } catch (err) {
      sendJson(res, 500, errorBody(spec, err))
    }
  }, { defaults: spec.defaults as never })
  return (req, res) => {
    if (req.url === '/outside') {
      sendJson(res, 200, spec.outside?.())
      return
    }
    if (spec.trace === undefined) {
      void scoped(req, res)
      return
    }
    void spec.trace.run(traceOf(req.headers), scoped, req, res)
  }
}

// HTTP/2 targets. The cases speak HTTP/1 (their client is node:http), so an
// HTTP/2 server is reached through a gateway in front of it that forwards
// each HTTP/1 request as a stream over a few HTTP/2 sessions, body chunks as
// they arrive, and resets the stream (RST_STREAM) when its HTTP/1 client goes
// away. Everything the cases check happens on the HTTP/2 server.
const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'host', 'te'])

function forwardable (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name) && !name.startsWith(':')))
}

async function throughHttp2Gateway (h2Port: number, closeTarget: () => Promise<void>): Promise<{ port: number, close: () => Promise<void> }> {
  const sessions = await Promise.all(Array.from({ length: 4 }, () => new Promise<http2.ClientHttp2Session>((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${h2Port}`)
    session.once('connect', () => resolve(session))
    session.once('error', reject)
  })))
  let next = 0
  const gateway = http.createServer((req, res) => {
    const stream = sessions[next++ % sessions.length].request({ ':method': req.method, ':path': req.url, ...forwardable(req.headers) }, { endStream: false })
    stream.on('error', () => { res.destroy() })
    stream.on('response', (headers) => {
      res.writeHead(Number(headers[':status']), forwardable(headers))
      stream.pipe(res)
    })
    req.pipe(stream)
    res.on('close', () => { if (!res.writableFinished && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL) })
  })
  const { port, close } = await listen(gateway)
  return {
    port,
    close: async () => {
      await close()
      for (const session of sessions) session.destroy()
      await closeTarget()
    }
  }
}

function listenHttp2 (server: http2.Http2Server): Promise<{ port: number, close: () => Promise<void> }> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: portOf(server as unknown as http.Server),
      close: () => new Promise<void>((resolve) => { server.close(() => resolve()) })
    }))
  })
}

const nodeHttp2: Adapter = {
  name: 'node:http2',
  async start (spec) {
    const target = await listenHttp2(http2.createServer(nodeHandler(spec) as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void))
    return throughHttp2Gateway(target.port, target.close)
  }
}

const fastifyHttp2: Adapter = {
  name: 'fastify (HTTP/2)',
  async start (spec) {
    const target = await fastifyOn('fastify (HTTP/2)', { http2: true }).start(spec)
    return throughHttp2Gateway(target.port, target.close)
  }
}

/** Every adapter the conformance suite runs against. */
export const adapters: Record<string, Adapter> = {
  fastify,
  express5: expressAdapter('express 5', express5),
  express4: expressAdapter('express 4', express4 as unknown as typeof express5),
  nodeHttp,
  nodeHttp2,
  fastifyHttp2
}
