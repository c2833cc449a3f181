import t from 'tap'
import Fastify from 'fastify'
import express from 'express'
import http from 'node:http'
import { compileBaggagePolicy, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS, parseBaggage, serializeBaggage } from '../../src/headers/baggage.js'
import fastifyRequestLocals from '../../src/fastify.js'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals } from '../../src/http.js'
import { requestLocal, tryGetLocals } from '../../src/index.js'
import { portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

declare module '../../src/index.js' {
  interface RequestLocals {
    plan?: 'free' | 'pro'
    quota?: number
    region?: string
  }
}

const policy = compileBaggagePolicy({ keys: ['tenant', 'plan', 'quota', 'region'], parse: { quota: (value: string) => Number.isInteger(Number(value)) ? Number(value) : undefined } }, 'b')

t.test('parseBaggage: W3C list-members, decoded, only the accepted keys', async (t) => {
  t.same(parseBaggage(policy, 'tenant=acme'), { tenant: 'acme' })
  t.same(parseBaggage(policy, ' tenant = acme%20corp ;prop=1;flag , plan=pro,\tquota=42 '), { tenant: 'acme corp', plan: 'pro', quota: 42 }, 'OWS, properties and percent-encoding')
  t.same(parseBaggage(policy, 'region=caf%C3%A9'), { region: 'café' }, 'UTF-8 percent-encoding')
  t.same(parseBaggage(policy, 'tenant=first,tenant=second'), { tenant: 'first' }, 'the first occurrence wins')
  t.same(parseBaggage(policy, 'region='), { region: '' }, 'an empty value is a value')
  t.equal(parseBaggage(policy, 'user=admin,other=x'), undefined, 'keys not listed are dropped')
  t.equal(parseBaggage(policy, ''), undefined)
})

t.test('parseBaggage: invalid members are dropped alone, never an error', async (t) => {
  const cases: Array<[string, object | undefined]> = [
    ['tenant=a%ZZ,plan=pro', { plan: 'pro' }], // malformed percent-encoding
    ['tenant=a%C3,plan=pro', { plan: 'pro' }], // an incomplete UTF-8 sequence
    ['tenant="quoted",plan=pro', { plan: 'pro' }], // DQUOTE is not a baggage-octet
    ['tenant=a b,plan=pro', { plan: 'pro' }], // a space inside the value
    ['tenant=a\\b,plan=pro', { plan: 'pro' }], // backslash
    ['tenant=caf\u00e9,plan=pro', { plan: 'pro' }], // a raw non-ASCII byte
    ['tenant=a\r\nX-Forged: 1,plan=pro', { plan: 'pro' }], // CR/LF
    ['tenant,plan=pro', { plan: 'pro' }], // no '='
    ['=acme,plan=pro', { plan: 'pro' }], // no key
    [',,,plan=pro,,', { plan: 'pro' }], // empty members
    ['quota=lots,plan=pro', { plan: 'pro' }], // refused by parse
    ['ten ant=acme', undefined]
  ]
  for (const [header, expected] of cases) t.same(parseBaggage(policy, header), expected, JSON.stringify(header))
  const throwing = compileBaggagePolicy({ keys: ['quota'], parse: { quota: () => { throw new Error('no') } } }, 'b')
  t.equal(parseBaggage(throwing, 'quota=1'), undefined, 'a parse function that throws drops the member')
})

t.test('parseBaggage: a header over the limits is dropped whole', async (t) => {
  const atLimit = 'tenant=acme,' + 'x=1,'.repeat(MAX_BAGGAGE_MEMBERS - 2) + 'plan=pro'
  t.same(parseBaggage(policy, atLimit), { tenant: 'acme', plan: 'pro' }, `${MAX_BAGGAGE_MEMBERS} members are read`)
  t.equal(parseBaggage(policy, atLimit + ',y=2'), undefined, `${MAX_BAGGAGE_MEMBERS + 1} members are not`)
  const big = `tenant=acme,pad=${'p'.repeat(MAX_BAGGAGE_BYTES - 'tenant=acme,pad='.length)}`
  t.equal(big.length, MAX_BAGGAGE_BYTES)
  t.same(parseBaggage(policy, big), { tenant: 'acme' }, `${MAX_BAGGAGE_BYTES} bytes are read`)
  t.equal(parseBaggage(policy, big + 'p'), undefined, 'one byte more is not')
})

t.test('serializeBaggage: the chosen locals, percent-encoded, within the limits', async (t) => {
  const store = { tenant: 'acme corp,;="', plan: 'pro', quota: 5, flag: true, big: 10n, user: { id: 'u1' }, none: undefined, lone: '\ud800' }
  t.equal(serializeBaggage(store, ['tenant', 'plan', 'quota', 'flag', 'big', 'user', 'none', 'missing', 'lone']),
    'tenant=acme%20corp%2C%3B%3D%22,plan=pro,quota=5,flag=true,big=10', 'objects, unset keys and lone surrogates are left out')
  t.equal(serializeBaggage(store, ['user']), undefined, 'nothing to send')
  const round = serializeBaggage({ tenant: 'café €', plan: 'pro' }, ['tenant', 'plan']) as string
  t.same(parseBaggage(policy, round), { tenant: 'café €', plan: 'pro' }, 'what is sent is read back')

  const many: Record<string, string> = {}
  const keys: string[] = []
  for (let i = 0; i < MAX_BAGGAGE_MEMBERS + 5; i++) { many[`k${i}`] = 'v'; keys.push(`k${i}`) }
  t.equal((serializeBaggage(many, keys) as string).split(',').length, MAX_BAGGAGE_MEMBERS, `at most ${MAX_BAGGAGE_MEMBERS} members`)
  const large = { a: 'x'.repeat(5000), b: 'y'.repeat(5000), c: 'z' }
  t.equal(serializeBaggage(large, ['a', 'b', 'c']), `a=${'x'.repeat(5000)},c=z`, `a member that would pass ${MAX_BAGGAGE_BYTES} bytes is left out`)
})

t.test('identity-bearing keys are refused unless opted in per key', async (t) => {
  for (const key of ['user', 'userId', 'roles', 'permissions', 'sessionId', 'accessToken', 'authLevel', 'isAdmin', 'principal']) {
    t.throws(() => compileBaggagePolicy({ keys: ['tenant', key] }, 'opt'), {
      code: 'ERR_REQUEST_LOCALS_OPTIONS',
      message: new RegExp(`^opt\\.keys has "${key}", which looks identity-bearing\\. Any client that can reach this service can send a baggage header.*listing it in opt\\.identityKeys too\\.$`)
    }, key)
  }
  const optedIn = compileBaggagePolicy({ keys: ['tenant', 'userId'], identityKeys: ['userId'] }, 'opt')
  t.same(parseBaggage(optedIn, 'userId=42,tenant=acme'), { userId: '42', tenant: 'acme' }, 'an explicit opt-in is honoured')
})

t.test('baggage options are validated with messages that name the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /^opt must be a plain object; found null/],
    [{ keys: ['tenant'], key: ['plan'] }, /^opt: found the unknown option `key`; did you mean `keys`\?/],
    [{}, /^opt\.keys must be an array of local names .*found undefined/],
    [{ keys: 'tenant' }, /^opt\.keys must be an array .*found a string/],
    [{ keys: ['ten ant'] }, /^opt\.keys must be an array .*found "ten ant" at index 0/],
    [{ keys: ['__proto__'] }, /^opt\.keys must be an array/],
    [{ keys: ['tenant'], identityKeys: [1] }, /^opt\.identityKeys must be an array .*found a number at index 0/],
    [{ keys: ['tenant'], parse: [] }, /^opt\.parse must be an object of functions by key; found an array/],
    [{ keys: ['tenant'], parse: { tenant: 'x' } }, /^opt\.parse\.tenant must be a function \(value\) => value for a key listed in opt\.keys; found a string\.$/],
    [{ keys: ['tenant'], parse: { plan: String } }, /^opt\.parse\.plan must be a function .*found a function for a key not listed\.$/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => compileBaggagePolicy(options, 'opt'), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
  }
})

// Through every adapter: a trusted service takes the listed keys, typed by
// parse, where the application set none (a default wins); forged identity
// never becomes a local.
const baggageOption = { keys: ['tenant', 'quota'] as const, parse: { quota: (value: string) => Number(value) } }
const forged = {
  baggage: 'tenant=acme,quota=7,user=admin,roles=root',
  'x-user': 'admin'
}
interface Seen { tenant: string | null, quota: number | null, user: unknown }
const seen = (): Seen => ({ tenant: requestLocal.tenant ?? null, quota: tryGetLocals()?.quota ?? null, user: tryGetLocals()?.user ?? null })

const starts: Array<[string, () => Promise<number>]> = [
  ['Fastify', async () => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyRequestLocals, { defaults: { quota: 1 }, upstream: { trust: true, baggage: baggageOption } })
    app.get('/', async () => seen())
    await app.listen({ port: 0, host: '127.0.0.1' })
    return portOf(app.server)
  }],
  ['Express', async () => {
    const app = express()
    app.use(expressRequestLocals({ defaults: { quota: 1 }, upstream: { trust: true, baggage: baggageOption } }))
    app.get('/', (_req, res) => { res.json(seen()) })
    const server = http.createServer(app)
    t.teardown(() => server.close())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return portOf(server)
  }],
  ['node:http', async () => {
    const server = http.createServer(withRequestLocals((_req, res) => { res.end(JSON.stringify(seen())) }, { defaults: { quota: 1 }, upstream: { trust: true, baggage: baggageOption } }))
    t.teardown(() => server.close())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return portOf(server)
  }]
]

for (const [name, start] of starts) {
  t.test(`${name}: a trusted upstream's baggage becomes locals; forged identity does not`, async (t) => {
    const port = await start()
    t.same((await send({ port, headers: forged })).json(), { tenant: 'acme', quota: 1, user: null }, 'baggage fills tenant; the default quota wins over quota=7')
    t.same((await send({ port })).json(), { tenant: null, quota: 1, user: null }, 'no baggage: the defaults')
    const oversized = await send({ port, headers: { baggage: `tenant=evil,pad=${'p'.repeat(MAX_BAGGAGE_BYTES)}` } })
    t.equal(oversized.status, 200)
    t.same(oversized.json(), { tenant: null, quota: 1, user: null }, 'an oversized header is dropped whole')
    const malformed = await send({ port, headers: { baggage: 'tenant=%E0%A4%A,quota=9' } })
    t.same(malformed.json(), { tenant: null, quota: 1, user: null }, 'a malformed member is dropped alone')
  })
}
