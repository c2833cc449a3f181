import type http from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { Hono, type Context } from 'hono'
import { honoRequestLocals, type HonoRequestLocalsEnv } from '../../../src/hono.js'
import { defineRequestResource } from '../../../src/index.js'
import { currentUser, errorBody, listen, traceOf, type Adapter, type AppSpec } from '../app.js'
import { currentRuntime } from '../harness.js'

// Hono on each runtime's own server: @hono/node-server on Node, Bun.serve on
// Bun, Deno.serve on Deno. A Fetch-API server has no response 'close' event;
// the end the cases watch for is the end of the request's scope, which is
// when Hono's adapter releases the request's resources. So `onClose` is a
// resource's dispose: released in the scope, 'completed' when the response
// was sent in full, 'aborted' when the client went away first.

type Started = Awaited<ReturnType<Adapter['start']>>
type Fetch = (request: Request) => Response | Promise<Response>

interface BunServer { port: number, stop: (closeActiveConnections?: boolean) => Promise<void> | void }
interface DenoServer { addr: { port: number }, shutdown: () => Promise<void>, finished: Promise<void> }
interface RuntimeGlobals {
  Bun: { serve: (options: { fetch: Fetch, port: number, hostname: string }) => BunServer }
  Deno: { serve: (options: { port: number, hostname: string, onListen: () => void }, handler: Fetch) => DenoServer }
}

async function serveOnThisRuntime (fetch: Fetch): Promise<Started> {
  const runtime = currentRuntime()
  const globals = globalThis as unknown as RuntimeGlobals
  if (runtime === 'bun') {
    const server = globals.Bun.serve({ fetch, port: 0, hostname: '127.0.0.1' })
    return { port: server.port, close: async () => { await server.stop(true) } }
  }
  if (runtime === 'deno') {
    const server = globals.Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: () => {} }, fetch)
    return { port: server.addr.port, close: () => server.shutdown() }
  }
  const { createAdaptorServer } = await import('@hono/node-server')
  return listen(createAdaptorServer({ fetch }) as http.Server)
}

const headersOf = (c: Context): IncomingHttpHeaders => c.req.header()

function closeWatch (spec: AppSpec): { get: () => Promise<{ headers: IncomingHttpHeaders }> } | undefined {
  const onClose = spec.onClose
  if (onClose === undefined) return undefined
  return defineRequestResource({
    name: 'close watch',
    create: () => ({ headers: {} }),
    dispose: ({ headers }, outcome) => { onClose(headers, outcome.status === 'completed') }
  })
}

export const hono: Adapter = {
  name: 'hono',
  async start (spec) {
    const app = new Hono<HonoRequestLocalsEnv>()
    if (spec.trace !== undefined) {
      const trace = spec.trace
      app.use((c, next) => trace.run(traceOf(headersOf(c)), next))
    }
    // Registered before the middleware, so it runs outside the scope.
    app.get('/outside', (c) => c.json(spec.outside?.() ?? null))
    const defaults = spec.defaults
    app.use(honoRequestLocals({
      defaults: typeof defaults === 'function' ? (req) => defaults({ headers: req.header() }) : defaults
    }))
    const watch = closeWatch(spec)
    app.use(async (c, next) => {
      await spec.enter?.(headersOf(c))
      if (watch !== undefined) (await watch.get()).headers = headersOf(c)
      await next()
    })
    app.all('/', async (c) => {
      const text = await c.req.text()
      const parsedIn = text === '' ? 'unparsed' : currentUser()
      const result = await spec.handle({ headers: headersOf(c), body: text === '' ? null : JSON.parse(text), parsedIn })
      return c.json(result as object)
    })
    app.onError((err, c) => c.json(errorBody(spec, err) as object, 500))
    return serveOnThisRuntime(app.fetch)
  }
}
