import { randomUUID } from 'node:crypto'
import { compileBaggagePolicy, parseBaggage, type BaggagePolicy, type InboundBaggageOptions } from './baggage.js'
import { describe, optionsError } from '../core/errors.js'
import { isHttpToken } from './http-token.js'
import { attachRequestId, requestIdOf, traceIdOf } from '../core/scope-state.js'
import { sharedStorage, type Store } from '../core/storage.js'
import { copyStore } from '../core/store.js'
import { parseTraceparent, startTrace, type TraceContext } from './trace-context.js'

/**
 * How a request gets its id, and what it takes from the service that called
 * it. Without `trustUpstream` or `header`, every request gets a fresh
 * `crypto.randomUUID()` and starts no trace: trusting what a client sent is
 * opt-in.
 *
 * @example
 * // an edge service: its own ids, echoed to the client
 * await app.register(fastifyRequestLocals, { requestId: { echoHeader: true } })
 * // an internal service behind it: continue the caller's id, trace and tenant
 * await app.register(fastifyRequestLocals, {
 *   requestId: { trustUpstream: true, baggage: { keys: ['tenant'] } }
 * })
 */
export interface RequestIdOptions {
  /**
   * Continue what a trusted upstream service sent: its request id (from
   * `header`, by default `x-request-id`), its W3C `traceparent` (unless
   * `traceparent: false`) and the `baggage` keys listed. Set it only where
   * every caller is one of your own services (behind a gateway that strips
   * these headers from outside traffic). Default false.
   */
  trustUpstream?: boolean
  /**
   * Accept an incoming id from this request header (`true` means
   * `x-request-id`; with `trustUpstream` it is the default). It is used only
   * when it is 1–200 characters of `A-Z a-z 0-9 - _ . : @`; anything else is
   * replaced by a fresh id.
   */
  header?: string | boolean
  /**
   * Send the request id back in this response header (`true` means the
   * `header` name, or `x-request-id`).
   */
  echoHeader?: string | boolean
  /**
   * Continue the trace of a valid W3C `traceparent` header: `traceId()`
   * returns its trace id and outgoing calls carry it on. Defaults to
   * `trustUpstream`, so an untrusted edge starts no trace from a client's header.
   */
  traceparent?: boolean
  /**
   * Start a trace for each request that continues none (a random trace id,
   * marked sampled): `traceId()` and logs carry it, and outgoing calls carry
   * it on in `traceparent`. For edge services without OpenTelemetry. Default false.
   */
  startTrace?: boolean
  /**
   * The locals taken from a trusted upstream's W3C `baggage` header (needs
   * `trustUpstream`). Identity-bearing keys are refused unless listed in
   * `identityKeys` too.
   */
  baggage?: InboundBaggageOptions
  /**
   * Makes the id of a request that brings none (or an invalid one), instead
   * of `crypto.randomUUID()`; for example `requestIdFromActiveSpan` of
   * `request-locals/opentelemetry`. A result that is not a valid id
   * (1–200 characters of `A-Z a-z 0-9 - _ . : @`) is replaced by a UUID.
   */
  generate?: () => string
}

/** Why an incoming request id was replaced. */
export type RequestIdRejection = 'duplicated' | 'empty' | 'too-long' | 'invalid-characters'

/** The validated form of {@link RequestIdOptions}, compiled once per server. */
export interface RequestIdPolicy {
  /** The lower-case header to accept an id from, or undefined. */
  readonly header: string | undefined
  /** The response header to echo the id in, or undefined. */
  readonly echoHeader: string | undefined
  readonly traceparent: boolean
  readonly startTrace: boolean
  readonly baggage: BaggagePolicy | undefined
  readonly generate: (() => string) | undefined
}

/** The id a request gets, and what the adapter must report about it. */
export interface IncomingRequestId {
  readonly id: string
  /** The trace of a valid traceparent header, when continued. */
  readonly trace: TraceContext | undefined
  /** The accepted baggage members, when any. */
  readonly baggage: Store | undefined
  /** Set when an incoming id was present but replaced; log it at debug level. */
  readonly rejected: RequestIdRejection | undefined
}

const MAX_LENGTH = 200
const DEFAULT_HEADER = 'x-request-id'
// An HTTP token (RFC 9110) minus the characters that are risky in logs and
// shells, so an accepted id can be echoed and logged verbatim.
const SAFE_ID = /^[A-Za-z0-9\-_.:@]+$/
const storage = sharedStorage()

/**
 * Why `value` cannot be used as a request id, or undefined when it can
 * (1–200 characters of `A-Z a-z 0-9 - _ . : @`).
 *
 * @example
 * validateRequestId('abc-123')   // undefined
 * validateRequestId('a\r\nb')    // 'invalid-characters'
 */
export function validateRequestId (value: string): RequestIdRejection | undefined {
  if (value.length === 0) return 'empty'
  if (value.length > MAX_LENGTH) return 'too-long'
  return SAFE_ID.test(value) ? undefined : 'invalid-characters'
}

function headerName (value: unknown, fallback: string, option: string): string | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return fallback
  if (typeof value === 'string' && isHttpToken(value)) return value.toLowerCase()
  throw optionsError(`${option} must be a header name (letters, digits and -), true or false; found ${typeof value === 'string' ? JSON.stringify(value) : describe(value)}. Pass for example 'x-request-id'.`)
}

function booleanOption (value: unknown, fallback: boolean, option: string): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw optionsError(`${option} must be a boolean; found ${describe(value)}.`)
  return value
}

/**
 * Validates {@link RequestIdOptions} once, when a server is set up. `where`
 * names the option in messages (e.g. "The request-locals plugin option `requestId`").
 */
export function compileRequestIdPolicy (options: unknown, where: string): RequestIdPolicy {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw optionsError(`${where} must be an object; found ${describe(options)}. Pass for example { header: 'x-request-id', echoHeader: true }.`)
  }
  const { header, echoHeader, baggage, generate } = options as RequestIdOptions
  const trustUpstream = booleanOption((options as RequestIdOptions).trustUpstream, false, `${where}.trustUpstream`)
  const traceparent = booleanOption((options as RequestIdOptions).traceparent, trustUpstream, `${where}.traceparent`)
  const startTrace = booleanOption((options as RequestIdOptions).startTrace, false, `${where}.startTrace`)
  const accepted = headerName(header ?? trustUpstream, DEFAULT_HEADER, `${where}.header`)
  if (baggage !== undefined && !trustUpstream) {
    throw optionsError(`${where}.baggage takes locals from incoming headers, which only a trusted upstream may set; found trustUpstream unset. Add trustUpstream: true where every caller is one of your own services, or remove baggage.`)
  }
  if (generate !== undefined && typeof generate !== 'function') {
    throw optionsError(`${where}.generate must be a function () => string; found ${describe(generate)}.`)
  }
  return {
    header: accepted,
    echoHeader: headerName(echoHeader, accepted ?? DEFAULT_HEADER, `${where}.echoHeader`),
    traceparent,
    startTrace,
    baggage: baggage === undefined ? undefined : compileBaggagePolicy(baggage, `${where}.baggage`),
    generate
  }
}

/**
 * Logs, at debug level, that an incoming id was replaced and why. The raw
 * value is never logged: it may carry forged log lines. Every adapter logs
 * through this, so the line reads the same whatever the framework.
 */
export function logReplacedRequestId (log: { debug: (details: object, message: string) => void }, policy: RequestIdPolicy, reason: RequestIdRejection, details?: object): void {
  log.debug({ requestIdHeader: policy.header, reason, ...details }, 'request-locals: replaced the incoming request id')
}

function freshId (policy: RequestIdPolicy): string {
  if (policy.generate === undefined) return randomUUID()
  const id = policy.generate()
  return typeof id === 'string' && validateRequestId(id) === undefined ? id : randomUUID()
}

/**
 * Decides the id of one incoming request from its raw headers (the flat
 * name/value list of `IncomingMessage.rawHeaders`, which keeps duplicates
 * apart): the accepted header when valid, otherwise a fresh id; and, as the
 * policy allows, the trace and baggage it continues. One pass, no throw.
 */
export function resolveRequestId (policy: RequestIdPolicy, rawHeaders: readonly string[]): IncomingRequestId {
  let incoming: string | undefined
  let incomingCount = 0
  let traceparent: string | undefined
  let traceparentCount = 0
  let baggage: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (policy.header !== undefined && name.length === policy.header.length && name.toLowerCase() === policy.header) {
      incoming = rawHeaders[i + 1]
      incomingCount++
    } else if (policy.traceparent && name.length === 11 && name.toLowerCase() === 'traceparent') {
      traceparent = rawHeaders[i + 1]
      traceparentCount++
    } else if (policy.baggage !== undefined && name.length === 7 && name.toLowerCase() === 'baggage') {
      // Several baggage headers are one list, as HTTP folds them.
      baggage = baggage === undefined ? rawHeaders[i + 1] : `${baggage},${rawHeaders[i + 1]}`
    }
  }
  // Several traceparent headers are invalid by the spec: ignore them all.
  const continued = traceparentCount === 1 ? parseTraceparent(traceparent as string) : undefined
  const trace = continued ?? (policy.startTrace ? startTrace() : undefined)
  const members = baggage === undefined ? undefined : parseBaggage(policy.baggage as BaggagePolicy, baggage)
  if (incoming === undefined) return { id: freshId(policy), trace, baggage: members, rejected: undefined }
  const rejected = incomingCount > 1 ? 'duplicated' : validateRequestId(incoming)
  return { id: rejected === undefined ? incoming : freshId(policy), trace, baggage: members, rejected }
}

/**
 * Records what a request was given when its scope opened: its id, its trace,
 * and the baggage locals (which replace the `defaults` of the same keys).
 */
export function attachIncoming (store: Store, id: string, incoming: IncomingRequestId | undefined): void {
  attachRequestId(store, id, incoming?.trace)
  const members = incoming?.baggage
  if (members !== undefined) copyStore(store, members)
}

/**
 * The current request's id, or undefined outside any scope. In Fastify it is
 * `request.id`; a scope opened by `runWithLocals` gets a UUID on first read,
 * shared with the scopes nested in it.
 *
 * @example
 * import { requestId } from 'request-locals'
 *
 * throw new Error(`payment failed (request ${requestId()})`)
 */
export function requestId (): string | undefined {
  const store = storage.getStore()
  return store === undefined ? undefined : requestIdOf(store)
}

/**
 * The trace id the current request continues (a valid W3C `traceparent`
 * header, when the policy continues traces) or started (`startTrace`), or
 * undefined (no trace, no request id policy, or outside a scope).
 *
 * @example
 * span.setAttribute('trace_id', traceId() ?? 'none')
 */
export function traceId (): string | undefined {
  const store = storage.getStore()
  return store === undefined ? undefined : traceIdOf(store)
}
