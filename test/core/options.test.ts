import t from 'tap'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import pino from 'pino'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals } from '../../src/http.js'
import fastifyRequestLocals from '../../src/fastify.js'
import { propagateRequestLocals, propagationHeaders } from '../../src/propagation.js'
import { logMixin, requestLogger } from '../../src/pino.js'
import { otelLogMixin } from '../../src/opentelemetry.js'
import {
  defineRequestResource, endRequestResources, requestLocal, RequestLocalsError, runWithLocals, snapshotLocals,
  type RequestLocalsErrorCode
} from '../../src/index.js'
import { editDistance, nearestKey, showKey } from '../../src/core/options.js'
import { portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// Every options object is checked once, when it is given: only known keys,
// a misspelling named with the nearest known key. Misuse of the adapters'
// factories fails at once, with the call to write instead.

const calls: Array<[string, (options: Record<string, unknown>) => unknown, string, string]> = [
  ['expressRequestLocals', (o) => expressRequestLocals(o), 'default', 'defaults'],
  ['withRequestLocals', (o) => withRequestLocals(() => {}, o), 'startTrac', 'startTrace'],
  ['propagateRequestLocals', (o) => propagateRequestLocals(o), 'origin', 'origins'],
  ['propagationHeaders', (o) => propagationHeaders(o), 'requestIdHeaders', 'requestIdHeader'],
  ['defineRequestResource', (o) => defineRequestResource({ create: () => 1, ...o }), 'dispos', 'dispose'],
  ['snapshotLocals', (o) => runWithLocals({}, () => snapshotLocals([], o)), 'transprt', 'transport'],
  ['requestLogger', (o) => requestLogger(pino({ enabled: false }), o), 'requestIdkey', 'requestIdKey'],
  ['logMixin', (o) => logMixin(o), 'local', 'locals'],
  ['otelLogMixin', (o) => otelLogMixin(o), 'spanIDKey', 'spanIdKey'],
  ['requestId', (o) => expressRequestLocals({ requestId: o }), 'echoheader', 'echoHeader'],
  ['upstream', (o) => expressRequestLocals({ upstream: { trust: true, ...o } }), 'baggages', 'baggage'],
  ['upstream.baggage', (o) => expressRequestLocals({ upstream: { trust: true, baggage: { keys: ['tenant'], ...o } } }), 'identitykeys', 'identityKeys']
]

t.test('every options object refuses an unknown key, naming it and the nearest known one', async (t) => {
  for (const [name, call, typo, nearest] of calls) {
    t.throws(() => call({ [typo]: true }), {
      code: 'ERR_REQUEST_LOCALS_OPTIONS',
      message: new RegExp(`found the unknown option \`${typo}\`; did you mean \`${nearest}\`\\?`)
    }, name)
  }
  await t.rejects(async () => { await Fastify().register(fastifyRequestLocals, { scopeRawEvent: true } as never) }, {
    code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /found the unknown option `scopeRawEvent`; did you mean `scopeRawEvents`\?/
  }, 'the Fastify plugin')
})

t.test('a key inherited from a polluted Object.prototype is neither an option nor an error', async (t) => {
  const proto = Object.prototype as Record<string, unknown>
  proto.origins = ['https://evil.example']
  proto.polluted = true
  t.teardown(() => { delete proto.origins; delete proto.polluted })
  t.doesNotThrow(() => expressRequestLocals({}))
  const stop = propagateRequestLocals({})
  stop()
})

t.test('a hostile key is shown quoted and cut short, never raw', async (t) => {
  const key = `evil\r\n{"level":60,"msg":"forged"}${'x'.repeat(100)}`
  const error = t.throws(() => expressRequestLocals({ [key]: 1 } as never)) as Error
  t.notOk(error.message.includes('\r') || error.message.includes('\n'), 'no line break reaches the message')
  t.notOk(error.message.includes('x'.repeat(100)), 'cut short')
  t.equal(showKey('\u001b[31m'), '"\\u001b[31m"')
  t.equal(editDistance('origin', 'origins'), 1)
  t.equal(editDistance('tarce', 'trace'), 1, 'a swap counts once')
  t.equal(nearestKey('x', []), undefined)
  t.throws(() => defineRequestResource({ create: () => 1, [key]: 1 } as never), { message: /did you mean/ })
})

t.test('no options expected: the message says to pass nothing', async (t) => {
  const { unknownKeyError } = await import('../../src/core/options.js')
  t.match(unknownKeyError('x', { where: 'f(options)', known: [], example: '{}' }).message, /^f\(options\): found the unknown option `x`; expected no options\. Pass nothing\.$/)
})

t.test('object defaults hold plain data only: the path of anything else is named', async (t) => {
  class User { constructor (readonly id: string) {} }
  const cases: Array<[unknown, RegExp]> = [
    [{ user: new User('u1') }, /\.defaults\.user cannot be copied per request: expected plain data .*found an instance of User\. Pass defaults as a function/],
    [{ seen: new Map() }, /\.defaults\.seen .*found an instance of Map/],
    [{ nested: { since: new Date(0) } }, /\.defaults\.nested\.since .*found an instance of Date/],
    [{ list: [1, () => 2] }, /\.defaults\.list\["1"\] .*found a function/],
    [{ 'odd key': { fn: () => 1 } }, /\.defaults\["odd key"\]\.fn .*found a function/],
    [{ big: Symbol('s') }, /\.defaults\.big cannot be copied per request: structuredClone failed/]
  ]
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  cases.push([{ cyclic }, /\.defaults\.cyclic\.self .*a cycle/])
  for (const [defaults, message] of cases) {
    t.throws(() => expressRequestLocals({ defaults } as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
  }
  t.doesNotThrow(() => expressRequestLocals({ defaults: { tags: ['a'], user: { id: 'u' }, tenant: 'x' } }), 'plain data is fine')
})

t.test('app.use(expressRequestLocals) without calling it fails each request, saying what to write', async (t) => {
  const app = express()
  app.use(expressRequestLocals as never)
  app.get('/', (_req, res) => { res.send('unreachable') })
  app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => { res.status(500).send(err.message) })
  const server = http.createServer(app)
  t.teardown(() => { server.close() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const res = await send({ port: portOf(server) })
  t.equal(res.status, 500)
  t.match(res.text, /expected app\.use\(expressRequestLocals\(\)\); found app\.use\(expressRequestLocals\)/)
})

t.test('http.createServer(withRequestLocals) answers the first request with a 500 and throws', async (t) => {
  const server = http.createServer()
  t.teardown(() => { server.close() })
  const thrown: unknown[] = []
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    try {
      (withRequestLocals as unknown as (a: unknown, b: unknown) => void)(req, res)
    } catch (err) {
      thrown.push(err)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const res = await send({ port: portOf(server) })
  t.equal(res.status, 500)
  t.match(res.text, /Write http\.createServer\(withRequestLocals\(handler\)\) instead/)
  t.match(thrown, [{ code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT' }])
})

t.test('app.register(fastifyRequestLocals()) says how to register', async (t) => {
  t.throws(() => (fastifyRequestLocals as unknown as (o?: unknown) => void)(), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /expected app\.register\(fastifyRequestLocals, options\)/ })
  t.throws(() => (fastifyRequestLocals as unknown as (o?: unknown) => void)({ defaults: {} }), { message: /Write app\.register\(fastifyRequestLocals, options\) instead/ })
})

t.test('registering the plugin twice on one instance fails at once, saying so', async (t) => {
  const app = Fastify({ pluginTimeout: 60_000 })
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals)
  const started = Date.now()
  await t.rejects(async () => { await app.register(fastifyRequestLocals) }, {
    code: 'ERR_REQUEST_LOCALS_OPTIONS',
    message: /request-locals is already registered on this Fastify instance .*Register it once, on the root instance/
  })
  t.ok(Date.now() - started < 5000, 'no plugin timeout first')
})

// Every code the library defines, triggered through the public API, with a
// message that says what was expected, what was found and the fix.
t.test('every error code: a message with expected, found and a fix, and no doubled words', async (t) => {
  const caught: Array<[RequestLocalsErrorCode, unknown]> = []
  const capture = async (code: RequestLocalsErrorCode, fn: () => unknown): Promise<void> => {
    try {
      await fn()
      caught.push([code, undefined])
    } catch (err) {
      caught.push([code, err])
    }
  }
  await capture('ERR_REQUEST_LOCALS_NO_SCOPE', () => requestLocal.tenant)
  await capture('ERR_REQUEST_LOCALS_NO_SCOPE', () => endRequestResources())
  await capture('ERR_REQUEST_LOCALS_RESERVED_KEY', () => runWithLocals({}, () => { (requestLocal as Record<string, unknown>).then = 1 }))
  await capture('ERR_REQUEST_LOCALS_OPTIONS', () => propagateRequestLocals({ origin: [] } as never))
  await capture('ERR_REQUEST_LOCALS_OPTIONS', () => expressRequestLocals({ requestId: { trustUpstream: true } } as never))
  await capture('ERR_REQUEST_LOCALS_OPTIONS', () => expressRequestLocals({ defaults: { user: new Map() } } as never))
  await capture('ERR_REQUEST_LOCALS_OPTIONS', () => Fastify().register(fastifyRequestLocals, { defaults: 42 } as never))
  await capture('ERR_REQUEST_LOCALS_INVALID_ARGUMENT', () => withRequestLocals('nope' as never))
  await capture('ERR_REQUEST_LOCALS_INVALID_ARGUMENT', () => (fastifyRequestLocals as unknown as () => void)())
  await capture('ERR_REQUEST_LOCALS_NOT_CLONEABLE', () => runWithLocals({ tenant: 't', since: new Date(0) }, () => snapshotLocals(['since'])))
  await capture('ERR_REQUEST_LOCALS_INVALID_SNAPSHOT', () => runWithLocals({ $requestLocals: { requestId: 'bad id' } } as never, () => {}))
  const late = defineRequestResource({ name: 'late', create: () => 1 })
  const leftRunning = await new Promise<{ get: Promise<number> }>((resolve) => {
    // The scope ends when the function returns; the timer it left runs later, still in it.
    runWithLocals({}, () => { setImmediate(() => { resolve({ get: late.get() }) }) })
  })
  await capture('ERR_REQUEST_LOCALS_SCOPE_ENDED', () => leftRunning.get)
  const failing = defineRequestResource({ name: 'tx', create: () => 1, dispose: () => { throw new Error('COMMIT failed') } })
  await capture('ERR_REQUEST_LOCALS_DISPOSE_FAILED', () => runWithLocals({}, async () => { await failing.get(); await endRequestResources() }))

  const codes: RequestLocalsErrorCode[] = ['ERR_REQUEST_LOCALS_NO_SCOPE', 'ERR_REQUEST_LOCALS_RESERVED_KEY', 'ERR_REQUEST_LOCALS_OPTIONS', 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', 'ERR_REQUEST_LOCALS_NOT_CLONEABLE', 'ERR_REQUEST_LOCALS_INVALID_SNAPSHOT', 'ERR_REQUEST_LOCALS_SCOPE_ENDED', 'ERR_REQUEST_LOCALS_DISPOSE_FAILED']
  t.same([...new Set(caught.map(([code]) => code))].sort(), [...codes].sort(), 'every code is triggered')
  for (const [code, err] of caught) {
    t.ok(err instanceof RequestLocalsError, `${code}: a RequestLocalsError`)
    const { message } = err as RequestLocalsError
    t.equal((err as RequestLocalsError).code, code, `${code}: the code`)
    t.notMatch(message, /\b(\w+)\s+\1\b/i, `${code}: no doubled word in "${message.slice(0, 60)}…"`)
    t.notMatch(message, /^The The|\bThe\s+the\b/i, `${code}: no doubled article`)
    t.match(message, /expect|must|cannot|failed|renamed|unknown/i, `${code}: says what was expected`)
    t.match(message, /found|failed:/i, `${code}: says what was found`)
    t.match(message, /\b(Pass|Register|Rename|Remove|Write|wrap|Refuse|Leave|Store|Get|Call|answer|Make|use)\b/, `${code}: gives a fix`)
  }
})
