import t, { type Test } from 'tap'
import { AsyncLocalStorage } from 'node:async_hooks'
import { EventEmitter } from 'node:events'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { withRequestLocals } from '../src/http.js'
import { requestLocal, tryGetLocals } from '../src/index.js'
import { deferred, portOf, send } from './helpers/http.js'
import './helpers/locals.js'

// node:http-only behaviour of withRequestLocals. What every adapter shares
// (isolation, bodies, errors, aborts, defaults) is in test/conformance/.

async function serve (t: Test, listener: http.RequestListener): Promise<number> {
  const server = http.createServer(listener)
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
}

t.test('the wrapped handler returns what the handler returns, and is named', async (t) => {
  const handler = withRequestLocals((_req: IncomingMessage, _res: ServerResponse) => requestLocal.tenant ?? 'none', { defaults: { tenant: 'acme' } })
  t.not(handler.name, '', 'stack traces name the wrapper')
  let returned: string | undefined
  const port = await serve(t, (req, res) => {
    returned = handler(req, res)
    res.end()
  })
  await send({ port })
  t.equal(returned, 'acme')
})

t.test('an event emitted from another library\'s context keeps that context; only the store is the request\'s', async (t) => {
  // A saved AsyncResource would restore the context of the moment the scope
  // opened, replacing the tracing library's current one; emitting in the
  // request's store must not.
  const tracing = new AsyncLocalStorage<string>()
  const seen = deferred<{ trace?: string, tenant?: string }>()
  const port = await serve(t, withRequestLocals((req, res) => {
    tracing.run('when the scope opened', () => {
      req.on('custom', () => seen.resolve({ trace: tracing.getStore(), tenant: requestLocal.tenant }))
    })
    setImmediate(() => tracing.run('when the event is emitted', () => req.emit('custom')))
    res.end()
  }, { defaults: { tenant: 'acme' } }))
  await send({ port })
  t.same(await seen.promise, { trace: 'when the event is emitted', tenant: 'acme' })
})

t.test('an emit that another library set on the request or response is kept, and runs in scope', async (t) => {
  const seen: string[] = []
  const wrapped = withRequestLocals((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', () => res.end())
  }, { defaults: { tenant: 'acme' } })
  const served: EventEmitter[] = []
  const port = await serve(t, (req, res) => {
    // An instrumentation library that wraps emit on the instances.
    for (const [name, emitter] of [['req', req], ['res', res]] as const) {
      emitter.emit = function recordEmit (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
        if (event === 'end' || event === 'finish' || event === 'unheard') seen.push(`${name} ${String(event)}: ${tryGetLocals()?.tenant ?? 'none'}`)
        return EventEmitter.prototype.emit.call(this, event, ...args)
      } as typeof emitter.emit
    }
    served.push(req, res)
    wrapped(req, res)
  })
  await send({ port, method: 'POST', body: 'abc', chunks: 3 })
  // An event nobody listens to, emitted from outside any scope: the other
  // library's emit still runs in the store.
  for (const emitter of served) emitter.emit('unheard')
  t.same(seen.sort(), ['req end: acme', 'req unheard: acme', 'res finish: acme', 'res unheard: acme'])
})

t.test('a request and response class of the server\'s own that overrides emit keeps it, and runs it in scope', async (t) => {
  const seen: string[] = []
  function record (name: string, event: string | symbol): void {
    if (event === 'end' || event === 'finish') seen.push(`${name} ${String(event)}: ${tryGetLocals()?.tenant ?? 'none'}`)
  }
  // http.createServer({ IncomingMessage, ServerResponse }): subclasses whose
  // prototypes, not instances, carry an emit of their own.
  class RecordingRequest extends http.IncomingMessage {
    override emit (event: string | symbol, ...args: unknown[]): boolean {
      record('req', event)
      return super.emit(event, ...args)
    }
  }
  class RecordingResponse<Request extends http.IncomingMessage = http.IncomingMessage> extends http.ServerResponse<Request> {
    override emit (event: string | symbol, ...args: unknown[]): boolean {
      record('res', event)
      return super.emit(event, ...args)
    }
  }
  const server = http.createServer({ IncomingMessage: RecordingRequest, ServerResponse: RecordingResponse }, withRequestLocals((req, res) => {
    req.resume()
    req.on('end', () => res.end())
  }, { defaults: { tenant: 'acme' } }))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  await send({ port: portOf(server), method: 'POST', body: 'abc', chunks: 3 })
  t.same(seen.sort(), ['req end: acme', 'res finish: acme'])
})

t.test('wrapped twice, a request keeps the one store it was given first', async (t) => {
  const inner = withRequestLocals((_req: IncomingMessage, res: ServerResponse) => {
    res.end(JSON.stringify({ tenant: requestLocal.tenant }))
  }, { defaults: { tenant: 'inner' } })
  const port = await serve(t, withRequestLocals((req, res) => {
    requestLocal.tenant = 'set by the outer handler'
    setImmediate(inner, req, res)
  }))
  t.same((await send({ port })).json(), { tenant: 'set by the outer handler' })
})

t.test('a defaults function that fails throws from the wrapped handler, as the handler would', async (t) => {
  const handler = withRequestLocals((_req: IncomingMessage, res: ServerResponse) => { res.end('unreachable') }, {
    defaults: (req) => {
      if (req.headers['x-bad'] === 'throw') throw new Error('no tenant')
      return 'nope' as unknown as object
    }
  })
  const errors: unknown[] = []
  const port = await serve(t, (req, res) => {
    try {
      handler(req, res)
    } catch (err) {
      errors.push(err)
      res.statusCode = 500
      res.end(JSON.stringify({ scoped: tryGetLocals() !== undefined }))
    }
  })
  t.same((await send({ port })).json(), { scoped: false })
  await send({ port, headers: { 'x-bad': 'throw' } })
  t.match(errors, [
    { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /the value returned by withRequestLocals\(handler, options\)\.defaults\(request\) must be a plain object of locals; found a string/ },
    { message: 'no tenant' }
  ])
})

t.test('a handler that is not a function, or bad options, fail when the wrapper is created', async (t) => {
  t.throws(() => withRequestLocals('nope' as never), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /expects handler to be a function \(req, res\) => …; found a string/ })
  const cases: Array<[unknown, RegExp]> = [
    ['nope', /^withRequestLocals\(handler, options\) must be a plain object; found a string/],
    [null, /found null/],
    [[1], /found an array/],
    [{ defaults: 42 }, /^withRequestLocals\(handler, options\)\.defaults must be a plain object or a function/],
    [{ defaults: { constructor: 1 } }, /reserved key "constructor"/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => withRequestLocals(() => {}, options as object), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
  }
})
