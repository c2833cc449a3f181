import t from 'tap'
import { compileRequestIdPolicy, resolveRequestId, validateRequestId, type IdentityOptions, type RequestIdPolicy } from '../../src/headers/request-id.js'
import { parseTraceparent } from '../../src/headers/trace-context.js'
import { requestId, runWithLocals, traceId } from '../../src/index.js'
import { hostileHeaders } from '../helpers/hostile-headers.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
function policyOf (options: IdentityOptions): RequestIdPolicy {
  return compileRequestIdPolicy(options, 'test') as RequestIdPolicy
}
const accepting = policyOf({ upstream: { trust: true } })

t.test('validateRequestId and resolveRequestId: the hostile header table', async (t) => {
  for (const { name, values, rejected } of hostileHeaders) {
    const rawHeaders = ['Host', 'example', ...values.flatMap((value) => ['X-Request-Id', value])]
    const result = resolveRequestId(accepting, rawHeaders)
    t.equal(result.rejected, rejected, `${name}: reason`)
    if (rejected === undefined) {
      t.equal(result.id, values[0], `${name}: accepted verbatim`)
    } else {
      t.match(result.id, UUID, `${name}: replaced by a UUID`)
      t.notOk(values.includes(result.id), `${name}: never the incoming value`)
    }
    if (values.length === 1) t.equal(validateRequestId(values[0]), rejected, `${name}: validateRequestId agrees`)
  }
})

t.test('an absent header gives a fresh UUID without a rejection', async (t) => {
  const first = resolveRequestId(accepting, ['Host', 'example'])
  const second = resolveRequestId(accepting, [])
  t.match(first, { rejected: undefined, trace: undefined, baggage: undefined })
  t.match(first.id, UUID)
  t.not(first.id, second.id)
})

t.test('without upstream.trust, incoming ids are never taken nor reported', async (t) => {
  for (const policy of [policyOf({ requestId: {} }), policyOf({ upstream: { trust: false } })]) {
    const result = resolveRequestId(policy, ['x-request-id', 'abc', 'x-request-id', 'EVIL\r\n'])
    t.match(result.id, UUID)
    t.equal(result.rejected, undefined)
  }
  const policy = policyOf({ upstream: { trust: false, requestIdHeader: 'x-request-id' } })
  const result = resolveRequestId(policy, ['x-request-id', 'abc', 'x-request-id', 'EVIL\r\n'])
  t.match(result.id, UUID)
  t.equal(result.rejected, undefined)
})

t.test('a custom header name matches case-insensitively', async (t) => {
  const policy = policyOf({ upstream: { trust: true, requestIdHeader: 'X-Correlation-Id' } })
  t.equal(policy.header, 'x-correlation-id')
  t.equal(resolveRequestId(policy, ['x-CORRELATION-id', 'corr-1']).id, 'corr-1')
  t.match(resolveRequestId(policy, ['x-request-id', 'corr-1']).id, UUID, 'the default name is not read')
})

const validTraceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

t.test('traceparent: the trace id of a valid header, nothing for an invalid one', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    [validTraceparent, '4bf92f3577b34da6a3ce929d0e0e4736'],
    ['01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future', '4bf92f3577b34da6a3ce929d0e0e4736'],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', undefined],
    ['00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', undefined],
    ['ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', undefined],
    ['00-00000000000000000000000000000000-00f067aa0ba902b7-01', undefined],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', undefined],
    ['00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', undefined],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: 1', undefined],
    ['', undefined],
    ['garbage', undefined]
  ]
  for (const [value, expected] of cases) t.equal(parseTraceparent(value)?.traceId, expected, JSON.stringify(value))
  t.same(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '00' }, 'the flags are kept')

  const policy = policyOf({ upstream: { trust: true } })
  t.same(resolveRequestId(policy, ['Traceparent', validTraceparent]).trace, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '01' })
  t.equal(resolveRequestId(policy, ['traceparent', validTraceparent, 'traceparent', validTraceparent]).trace, undefined, 'two traceparent headers are ignored')
  t.equal(resolveRequestId(policyOf({ requestId: {} }), ['traceparent', validTraceparent]).trace, undefined, 'not continued by default (an untrusted edge)')
  t.equal(resolveRequestId(policyOf({ upstream: { trust: true, traceparent: false } }), ['traceparent', validTraceparent]).trace, undefined, 'traceparent: false')
})

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

t.test('requestId() and traceId() outside and inside runWithLocals scopes', async (t) => {
  t.equal(requestId(), undefined, 'no id outside a scope')
  t.equal(traceId(), undefined)
  await runWithLocals({}, async () => {
    const id = requestId()
    t.match(id, UUID, 'a runWithLocals scope gets a UUID on first read')
    await Promise.resolve()
    t.equal(requestId(), id, 'and keeps it')
    t.equal(traceId(), undefined)
    runWithLocals({}, () => t.equal(requestId(), id, 'a nested scope shares it'))
  })
  runWithLocals({}, () => {
    // The parent has not read its id yet when the nested scope opens.
    const nested = runWithLocals({}, () => requestId())
    t.equal(requestId(), nested, 'a nested scope opened before the first read still shares the id')
  })
  const a = runWithLocals({}, () => requestId())
  const b = runWithLocals({}, () => requestId())
  t.not(a, b, 'separate scopes get separate ids')
})

t.test('generate makes the ids of requests that bring none; an unusable result becomes a UUID', async (t) => {
  const made = ['from-generator', 'not safe\r\n', 42 as unknown as string, '']
  const received: unknown[] = []
  const policy = policyOf({ upstream: { trust: true }, requestId: { generate: (req: unknown) => { received.push(req); return made.shift() as string } } })
  const request = { url: '/' }
  t.equal(resolveRequestId(policy, [], request).id, 'from-generator')
  t.equal(received[0], request, 'generate gets the incoming request')
  t.match(resolveRequestId(policy, ['x-request-id', 'EVIL id']), { id: UUID, rejected: 'invalid-characters' }, 'an unsafe generated id is not used')
  t.match(resolveRequestId(policy, []).id, UUID, 'nor a number')
  t.match(resolveRequestId(policy, []).id, UUID, 'nor an empty string')
  t.equal(resolveRequestId(policy, ['x-request-id', 'kept']).id, 'kept', 'an accepted incoming id wins')
})

t.test('startTrace: a request that continues no trace starts one', async (t) => {
  const edge = policyOf({ startTrace: true })
  const first = resolveRequestId(edge, ['traceparent', validTraceparent]).trace
  const second = resolveRequestId(edge, []).trace
  t.match(first, { traceId: /^[0-9a-f]{32}$/, flags: '01' })
  t.not(first?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'an untrusted edge does not continue the client\'s trace')
  t.not(first?.traceId, second?.traceId, 'a trace per request')
  const trusted = policyOf({ upstream: { trust: true }, startTrace: true })
  t.equal(resolveRequestId(trusted, ['traceparent', validTraceparent]).trace?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'a continued trace wins')
  t.match(resolveRequestId(trusted, ['traceparent', 'garbage']).trace, { traceId: /^[0-9a-f]{32}$/, flags: '01' }, 'an invalid one is replaced by a new trace')
})

t.test('baggage from a trusted upstream: several headers are one list', async (t) => {
  const policy = policyOf({ upstream: { trust: true, baggage: { keys: ['tenant', 'seen'] } } })
  t.same(resolveRequestId(policy, ['baggage', 'tenant=acme', 'Baggage', 'seen=yes,tenant=second']).baggage, { tenant: 'acme', seen: 'yes' })
  t.equal(resolveRequestId(policy, ['x-other', 'tenant=acme']).baggage, undefined, 'no header, no baggage')
  t.equal(resolveRequestId(policyOf({ upstream: { trust: true } }), ['baggage', 'tenant=acme']).baggage, undefined, 'without the baggage option, none is read')
})
