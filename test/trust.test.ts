import t from 'tap'
import http from 'node:http'
import express from 'express'
import { expressRequestLocals } from '../src/express.js'
import { requestLocal, tryGetLocals } from '../src/index.js'
import { portOf, send } from './helpers/http.js'
import './helpers/locals.js'

// Nothing a client sends overrides what the application set for the
// request: the precedence rules of the 1.0 options. That a client never
// chooses its request id is in test/headers/request-id/upstream-trust.test.ts.

async function listen (server: http.Server): Promise<number> {
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
}

t.test('Express: baggage never replaces a value set by middleware mounted earlier', async (t) => {
  const app = express()
  // e.g. a tenant taken from a verified credential, before the scope opens
  app.use((_req, res, next) => { res.locals.tenant = 'verified'; next() })
  app.use(expressRequestLocals({ upstream: { trust: true, baggage: { keys: ['tenant', 'seen'] } } }))
  app.get('/', (_req, res) => { res.json({ tenant: requestLocal.tenant, seen: requestLocal.seen ?? null }) })
  const port = await listen(http.createServer(app))
  t.same((await send({ port, headers: { baggage: 'tenant=evil,seen=yes' } })).json(), { tenant: 'verified', seen: 'yes' }, 'the set value stays; an unset one is filled')
})

t.test('Express: only own keys of an earlier res.locals; a client\'s __proto__ never becomes a prototype', async (t) => {
  const proto = Object.prototype as Record<string, unknown>
  const app = express()
  app.use((req, res, next) => {
    if (req.headers['x-case'] === 'plain') res.locals = { tenant: 'kept' } as never
    // A client body merged into res.locals before the scope opens.
    if (req.headers['x-case'] === 'assign-before') Object.assign(res.locals, JSON.parse('{"__proto__":{"isAdmin":true},"tenant":"t"}'))
    next()
  })
  app.use(expressRequestLocals())
  app.use(express.json())
  app.post('/', (req, res) => {
    // ... and after it, into the store itself.
    Object.assign(res.locals, req.body)
    const copy = JSON.parse(JSON.stringify(requestLocal)) as Record<string, unknown>
    const viaToJSON = (requestLocal as unknown as { toJSON: () => object }).toJSON()
    res.json({
      keys: Object.keys(requestLocal),
      json: copy,
      protoIsObject: Object.getPrototypeOf(viaToJSON) === Object.prototype,
      isAdmin: (viaToJSON as { isAdmin?: unknown }).isAdmin ?? null,
      spreadKeys: Object.keys({ ...requestLocal }),
      hasProto: '__proto__' in requestLocal
    })
  })
  app.get('/', (_req, res) => { res.json({ keys: Object.keys(requestLocal), polluted: (tryGetLocals() as Record<string, unknown> | undefined)?.polluted ?? null }) })
  const port = await listen(http.createServer(app))

  proto.polluted = 'from Object.prototype'
  try {
    const plain = await send({ port, headers: { 'x-case': 'plain' } })
    t.same(plain.json(), { keys: ['tenant'], polluted: null }, 'an inherited key of res.locals is not copied')
  } finally {
    delete proto.polluted
  }
  const body = JSON.stringify({ note: 'n', __proto__: { isAdmin: true } }).replace('"note"', '"__proto__":{"isAdmin":true},"note"')
  for (const [name, headers] of [['after', {}], ['before', { 'x-case': 'assign-before' }]] as const) {
    const res = await send({ port, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
    const seen = res.json<{ keys: string[], json: Record<string, unknown>, protoIsObject: boolean, isAdmin: unknown, spreadKeys: string[], hasProto: boolean }>()
    t.notOk(seen.keys.includes('__proto__'), `${name}: Object.keys(requestLocal) leaves __proto__ out`)
    t.notOk(seen.spreadKeys.includes('__proto__'), `${name}: so does a spread`)
    t.notOk(Object.hasOwn(seen.json, '__proto__'), `${name}: JSON.stringify(requestLocal) leaves it out`)
    t.equal(seen.protoIsObject, true, `${name}: toJSON's copy keeps Object.prototype`)
    t.equal(seen.isAdmin, null, `${name}: no client value is inherited`)
    t.equal(seen.hasProto, false)
  }
})
