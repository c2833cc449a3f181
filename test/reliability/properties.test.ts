import t from 'tap'
import fc from 'fast-check'
import { compileRequestIdPolicy, resolveRequestId, validateRequestId, type RequestIdPolicy } from '../../src/headers/request-id.js'
import { isTraceFlags, isTraceId, parseTraceparent } from '../../src/headers/trace-context.js'
import { compileBaggagePolicy, parseBaggage } from '../../src/headers/baggage.js'
import { expressRequestLocals } from '../../src/express.js'
import { propagateRequestLocals } from '../../src/propagation.js'
import { RequestLocalsError, requestId, runWithLocals } from '../../src/index.js'
import '../helpers/locals.js'

// Generated hostile input for everything parsed from a client, and for
// options: never an uncaught throw, never accepting what must be refused,
// never echoing a refused raw value. RUNS cases per property and run
// (RELIABILITY.md quotes it); a failure prints fast-check's seed to replay.
export const RUNS = 500

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const trusted = compileRequestIdPolicy({ upstream: { trust: true, baggage: { keys: ['tenant', 'seen'] } } }, 'test') as RequestIdPolicy
const untrusted = compileRequestIdPolicy({ upstream: { trust: false } }, 'test') as RequestIdPolicy

// Header values as Node hands them over: latin1 strings (every char < 256),
// plus full unicode for callers that pass strings of their own.
const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((code) => String.fromCharCode(code)), maxLength: 300 })
const anyText = fc.oneof(latin1, fc.string({ unit: 'grapheme', maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }))
const idChars = fc.string({ unit: fc.constantFrom(...'Aa09-_.:@ \r\n\t%"\u0000\u00ff'), maxLength: 220 })

t.test('request-id headers: a valid id is kept verbatim, anything else replaced by a UUID, nothing thrown', async () => {
  fc.assert(fc.property(fc.array(fc.oneof(anyText, idChars), { minLength: 0, maxLength: 3 }), (values) => {
    const raw = values.flatMap((value) => ['X-Request-Id', value])
    const result = resolveRequestId(trusted, raw)
    if (values.length === 1 && validateRequestId(values[0]) === undefined) {
      return result.id === values[0] && result.rejected === undefined
    }
    if (values.length === 0) return UUID.test(result.id) && result.rejected === undefined
    return UUID.test(result.id) && result.rejected !== undefined && !values.includes(result.id)
  }), { numRuns: RUNS })
  fc.assert(fc.property(anyText, (value) => {
    // Not trusted: never taken, never reported.
    const result = resolveRequestId(untrusted, ['x-request-id', value])
    return UUID.test(result.id) && result.rejected === undefined
  }), { numRuns: RUNS })
})

const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF-'), minLength: length, maxLength: length })
const traceparents = fc.oneof(
  anyText,
  fc.tuple(hex(2), hex(32), hex(16), hex(2), fc.constantFrom('', '-', '-x', '\r\n')).map(([v, trace, span, flags, tail]) => `${v}-${trace}-${span}-${flags}${tail}`)
)

t.test('traceparent: only a well-formed header is continued, nothing thrown', async () => {
  fc.assert(fc.property(traceparents, (value) => {
    const parsed = parseTraceparent(value)
    if (parsed === undefined) return true
    return /^[0-9a-f]{32}$/.test(parsed.traceId) && parsed.traceId !== '0'.repeat(32) &&
      /^[0-9a-f]{2}$/.test(parsed.flags) && value.includes(parsed.traceId) && /^[0-9a-f]{2}-/.test(value) && !value.startsWith('ff')
  }), { numRuns: RUNS })
})

const member = fc.tuple(fc.oneof(fc.constantFrom('tenant', 'seen', 'user', '__proto__', 'constructor', ' tenant '), anyText), anyText)
  .map(([key, value]) => `${key}=${value}`)
const baggageHeaders = fc.oneof(anyText, fc.array(fc.oneof(member, anyText), { maxLength: 20 }).map((members) => members.join(',')))
const policy = compileBaggagePolicy({ keys: ['tenant', 'seen'] }, 'test')

t.test('baggage: only listed keys, only valid values, a plain result, nothing thrown', async () => {
  fc.assert(fc.property(baggageHeaders, (header) => {
    const found = parseBaggage(policy, header)
    if (found === undefined) return true
    if (Object.getPrototypeOf(found) !== Object.prototype) return false
    return Object.keys(found).every((key) => (key === 'tenant' || key === 'seen') && typeof found[key] === 'string')
  }), { numRuns: RUNS })
  fc.assert(fc.property(baggageHeaders, (header) => {
    const result = resolveRequestId(trusted, ['baggage', header])
    return result.baggage === undefined || Object.keys(result.baggage).every((key) => key === 'tenant' || key === 'seen')
  }), { numRuns: RUNS })
})

const identities = fc.oneof(
  fc.anything(),
  fc.record({ requestId: fc.oneof(anyText, idChars, fc.anything()), traceId: fc.oneof(hex(32), fc.anything()), traceFlags: fc.oneof(hex(2), fc.anything()) }, { requiredKeys: [] })
)

/** The message of the error opening a scope from a snapshot with `identity` throws, or '' if it opens. */
function snapshotErrorMessage (identity: object): string {
  try {
    runWithLocals({ $requestLocals: identity } as never, () => requestId())
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

const snapshotFields: Array<[string, (value: unknown) => boolean]> = [
  ['requestId', (value) => typeof value === 'string' && validateRequestId(value) === undefined],
  ['traceId', (value) => typeof value === 'string' && isTraceId(value)],
  ['traceFlags', (value) => typeof value === 'string' && isTraceFlags(value)]
]

t.test('snapshot $requestLocals: reopened when valid, refused with INVALID_SNAPSHOT otherwise, no refused value echoed', async () => {
  fc.assert(fc.property(identities, (identity) => {
    try {
      const id = runWithLocals({ $requestLocals: identity } as never, () => requestId())
      const sent = (identity as { requestId?: unknown } | null)?.requestId
      return typeof id === 'string' && (typeof sent !== 'string' || id === sent || validateRequestId(sent) !== undefined)
    } catch (err) {
      if (!(err instanceof RequestLocalsError) || err.code !== 'ERR_REQUEST_LOCALS_INVALID_SNAPSHOT') return false
      // The message is about the first refused field, checked in this order.
      if (typeof identity !== 'object' || identity === null || Array.isArray(identity)) return true
      const fields = identity as Record<string, unknown>
      const refused = snapshotFields.find(([key, valid]) => fields[key] !== undefined && !valid(fields[key]))
      if (refused === undefined) return false
      const [key] = refused
      const sent = fields[key]
      if (typeof sent !== 'string' || !err.message.includes(sent)) return true
      // Found in the message, it may still be the message's own text (' a ',
      // '- _' from the list of allowed characters, ' 2' from its length):
      // then the message refusing another value of that length, made of a
      // character the sent one lacks, has it too.
      const filler = sent.includes('\u0000') ? '\u0001' : '\u0000'
      return snapshotErrorMessage({ ...fields, [key]: filler.repeat(sent.length) }).includes(sent)
    }
  }), { numRuns: RUNS, examples: [[{ requestId: ' 2' }], [{ requestId: '\u0000 1' }], [{ requestId: 'x'.repeat(201) }], [{ requestId: '3', traceId: '0'.repeat(24) + '0B00' }], [{ requestId: 'O', traceId: {} }], [{ requestId: '3', traceFlags: 'B0' }], [{ traceId: 'A 3' }]] })
})

const optionKeys = ['defaults', 'requestId', 'upstream', 'startTrace', 'endResourcesBeforeResponse', 'logger']
const optionValues = fc.oneof(fc.anything(), fc.record({ trust: fc.anything(), requestIdHeader: fc.anything(), echoHeader: fc.anything(), generate: fc.anything() }, { requiredKeys: [] }))
const options = fc.dictionary(fc.oneof(fc.constantFrom(...optionKeys), fc.string({ maxLength: 12 })), optionValues, { maxKeys: 4 })
const marker = fc.string({ unit: fc.constantFrom(...'qzjxkvw'), minLength: 10, maxLength: 20 }).map((text) => `RAW${text}`)

t.test('options: accepted or refused with ERR_REQUEST_LOCALS_OPTIONS, unknown keys always refused, string values never echoed', async () => {
  fc.assert(fc.property(options, (given) => {
    const unknown = Object.keys(given).some((key) => !optionKeys.includes(key))
    try {
      expressRequestLocals(given as never)
      return !unknown
    } catch (err) {
      return err instanceof RequestLocalsError && err.code === 'ERR_REQUEST_LOCALS_OPTIONS'
    }
  }), { numRuns: RUNS })
  fc.assert(fc.property(marker, fc.constantFrom('requestIdHeader', 'echoHeader', 'origins', 'traceparent', 'trust'), (raw, where) => {
    const attempts = [
      () => expressRequestLocals({ upstream: { trust: true, requestIdHeader: raw } } as never),
      () => expressRequestLocals({ requestId: { echoHeader: raw } }),
      () => expressRequestLocals({ upstream: { trust: raw } } as never),
      () => propagateRequestLocals({ origins: [raw] }),
      () => propagateRequestLocals({ [where]: raw } as never)
    ]
    return attempts.every((attempt) => {
      try {
        attempt()
        return true
      } catch (err) {
        return err instanceof RequestLocalsError && err.code === 'ERR_REQUEST_LOCALS_OPTIONS' && !err.message.includes(raw)
      }
    })
  }), { numRuns: RUNS })
})
