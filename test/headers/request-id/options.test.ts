import t from 'tap'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../../src/fastify.js'
import { expressRequestLocals } from '../../../src/express.js'
import { withRequestLocals } from '../../../src/http.js'
import { compileRequestIdPolicy, type IdentityOptions } from '../../../src/headers/request-id.js'

// The id options (requestId, upstream, startTrace, and the logger that
// hears about replaced ids) are checked once, when a server is set up, with
// messages that name the option and say what to pass instead.

t.test('options are validated once, with messages that name the option', async (t) => {
  const none = { startTrace: false, baggage: undefined, generate: undefined }
  t.equal(compileRequestIdPolicy({}, 'o'), undefined, 'no id option: the framework keeps its own ids')
  t.same(compileRequestIdPolicy({ upstream: { trust: true }, requestId: { echoHeader: true } }, 'o'), { header: 'x-request-id', echoHeader: 'x-request-id', traceparent: true, ...none })
  t.same(compileRequestIdPolicy({ upstream: { trust: true, requestIdHeader: 'X-Corr' }, requestId: { echoHeader: true } }, 'o'), { header: 'x-corr', echoHeader: 'x-corr', traceparent: true, ...none })
  t.same(compileRequestIdPolicy({ upstream: { trust: true, requestIdHeader: false }, requestId: { echoHeader: true } }, 'o'), { header: undefined, echoHeader: 'x-request-id', traceparent: true, ...none })
  t.same(compileRequestIdPolicy({ requestId: { echoHeader: 'X-Id' } }, 'o'), { header: undefined, echoHeader: 'x-id', traceparent: false, ...none })
  t.same(compileRequestIdPolicy({ upstream: { trust: true, requestIdHeader: 'X-Corr', traceparent: false } }, 'o'), { header: 'x-corr', echoHeader: undefined, traceparent: false, ...none })
  t.same(compileRequestIdPolicy({ upstream: { trust: false, requestIdHeader: 'X-Corr', baggage: { keys: ['tenant'] } } }, 'o'), { header: undefined, echoHeader: undefined, traceparent: false, ...none }, 'trust: false continues nothing')
  t.same(compileRequestIdPolicy({ upstream: { trust: false, requestIdHeader: 'X-Corr' }, requestId: { echoHeader: true } }, 'o')?.echoHeader, 'x-corr', 'echoHeader: true names the upstream header, trusted or not')
  const cases: Array<[unknown, RegExp]> = [
    [{ requestId: 'x-request-id' }, /^opt\.requestId must be a plain object; found a string/],
    [{ requestId: null }, /^opt\.requestId must be a plain object; found null/],
    [{ upstream: [] }, /^opt\.upstream must be a plain object; found an array/],
    [{ upstream: {} }, /^opt\.upstream\.trust must be true or false; found undefined\. Pass trust: true only where every caller is one of your own services/],
    [{ upstream: { trust: 'yes' } }, /^opt\.upstream\.trust must be true or false; found a string/],
    [{ upstream: { trust: true, requestIdHeader: 'x request id' } }, /^opt\.upstream\.requestIdHeader must be a header name .*found a string/],
    [{ upstream: { trust: true, requestIdHeader: 'x-id\r\n' } }, /opt\.upstream\.requestIdHeader must be a header name/],
    [{ upstream: { trust: true, requestIdHeader: 42 } }, /opt\.upstream\.requestIdHeader must be a header name .*found a number/],
    [{ upstream: { trust: true, requestIdHeader: true } }, /opt\.upstream\.requestIdHeader must be a header name or false; found true/],
    [{ requestId: { echoHeader: '' } }, /opt\.requestId\.echoHeader must be a header name .*found a string/],
    [{ upstream: { trust: true, traceparent: 'yes' } }, /^opt\.upstream\.traceparent must be true or false; found a string/],
    [{ startTrace: 'yes' }, /^opt\.startTrace must be true or false; found a string/],
    [{ requestId: { generate: 'uuid' } }, /^opt\.requestId\.generate must be a function \(req\) => string; found a string/],
    [{ upstream: { trust: true, origin: 'x' } }, /^opt\.upstream: found the unknown option `origin`; did you mean `trust`\?/],
    [{ upstream: { trust: true, traceParent: true } }, /^opt\.upstream: found the unknown option `traceParent`; did you mean `traceparent`\?/],
    [{ requestId: { trustUpstream: true } }, /^opt\.requestId: found `trustUpstream`: `requestId\.trustUpstream` was renamed to `upstream\.trust` in 1\.0\. Pass \{ upstream: \{ trust: true \} \}\./],
    [{ requestId: { header: true } }, /^opt\.requestId: found `header`: `requestId\.header` was removed in 1\.0: an incoming id is read only from a trusted upstream/],
    [{ requestId: { traceparent: true } }, /`requestId\.traceparent` was renamed to `upstream\.traceparent` in 1\.0/],
    [{ requestId: { baggage: { keys: ['tenant'] } } }, /`requestId\.baggage` was renamed to `upstream\.baggage` in 1\.0/],
    [{ requestId: { startTrace: true } }, /`requestId\.startTrace` was renamed to `startTrace` in 1\.0/],
    [{ requestId: { generator: () => 'x' } }, /^opt\.requestId: found the unknown option `generator`; did you mean `generate`\?/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => compileRequestIdPolicy(options as IdentityOptions, 'opt'), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message }, String(message))
  }
})

t.test('Fastify\'s own requestIdHeader conflicts with the policy: registration fails', async (t) => {
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(fastifyRequestLocals, { upstream: { trust: true } }) }, {
    code: 'ERR_REQUEST_LOCALS_OPTIONS',
    message: /conflict with Fastify's own requestIdHeader option \(found "x-request-id"\), which accepts any raw header value.*Remove requestIdHeader from Fastify's options and pass \{ upstream: \{ trust: true, requestIdHeader: "x-request-id" \} \}/
  })
})

t.test('Fastify: bad requestId options fail registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(fastifyRequestLocals, { upstream: { trust: true, requestIdHeader: 'bad name' } }) }, {
    code: 'ERR_REQUEST_LOCALS_OPTIONS',
    message: /^app\.register\(fastifyRequestLocals, options\)\.upstream\.requestIdHeader must be a header name/
  })
})

t.test('Express and node:http: bad logger and requestId options fail creation with ERR_REQUEST_LOCALS_OPTIONS', async (t) => {
  t.throws(() => expressRequestLocals({ logger: {} as never }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /^expressRequestLocals\(options\)\.logger must have a debug\(details, message\) method.*found an instance of Object/ })
  t.throws(() => withRequestLocals(() => {}, { requestId: 'yes' as never }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /^withRequestLocals\(handler, options\)\.requestId must be a plain object; found a string/ })
})
