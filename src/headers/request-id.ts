import { randomUUID } from 'node:crypto'
import { compileBaggagePolicy, parseBaggage, type BaggagePolicy, type InboundBaggageOptions } from './baggage.js'
import { booleanOption, checkOptionsObject } from '../core/options.js'
import { describe, optionsError } from '../core/errors.js'
import { isHttpToken } from './http-token.js'
import { attachRequestId, requestIdOf, traceIdOf, type TraceContext } from '../core/scope-state.js'
import { sharedStorage, type Store } from '../core/storage.js'
import { parseTraceparent, startTrace } from './trace-context.js'

/**
 * How a request's own id is made and shown. What an incoming request may
 * continue (an upstream's id, trace and baggage) is `upstream`'s business,
 * not this one's: see {@link UpstreamOptions}.
 *
 * @example
 * // an edge service: its own ids, echoed to the client
 * await app.register(fastifyRequestLocals, { requestId: { echoHeader: true } })
 */
export interface RequestIdOptions<Req = unknown> {
  /**
   * Send the request id back in this response header (`true` means
   * `upstream.requestIdHeader`, or `x-request-id`).
   */
  echoHeader?: string | boolean
  /**
   * Makes the id of a request that continues none (no trusted upstream id,
   * or an invalid one), instead of `crypto.randomUUID()`; it gets the
   * incoming request (Fastify: the raw `IncomingMessage`, as the id is made
   * before the Fastify request exists). A result that is not a valid id
   * (1–200 characters of `A-Z a-z 0-9 - _ . : @`) is replaced by a UUID.
   */
  generate?: (req: Req) => string
}

/**
 * What a request continues from the service that called it: the inbound
 * counterpart of `propagateRequestLocals`, with the same option names.
 * Nothing is continued unless `trust` is true.
 *
 * @example
 * // an internal service behind a gateway: continue the caller's id, trace and tenant
 * await app.register(fastifyRequestLocals, {
 *   upstream: { trust: true, baggage: { keys: ['tenant'] } }
 * })
 */
export interface UpstreamOptions {
  /**
   * Continue what the caller sent: its request id, its W3C `traceparent` and
   * the `baggage` keys listed. Set it to true only where every caller is one
   * of your own services (behind a gateway that strips these headers from
   * outside traffic): any client can send them. Required, so that trusting
   * is always a decision; with false nothing is continued and the other
   * keys are only checked (an environment can switch trust alone).
   */
  trust: boolean
  /** The header an upstream's request id arrives in (default `x-request-id`; `false` takes none). */
  requestIdHeader?: string | false
  /** Continue the trace of a valid W3C `traceparent` header (default true). */
  traceparent?: boolean
  /**
   * The locals taken from the W3C `baggage` header. Identity-bearing keys
   * are refused unless listed in `identityKeys` too. A value the
   * application already set for the request (`defaults`, middleware mounted
   * before) is never replaced by baggage.
   */
  baggage?: InboundBaggageOptions
}

/** Why an incoming request id was replaced. */
export type RequestIdRejection = 'duplicated' | 'empty' | 'too-long' | 'invalid-characters'

/** The validated form of {@link RequestIdOptions}, compiled once per server. */
export interface RequestIdPolicy {
  /** The lower-case header to accept an id from (a trusted upstream's), or undefined. */
  readonly header: string | undefined
  /** The response header to echo the id in, or undefined. */
  readonly echoHeader: string | undefined
  readonly traceparent: boolean
  readonly startTrace: boolean
  readonly baggage: BaggagePolicy | undefined
  readonly generate: ((req: never) => string) | undefined
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
  throw optionsError(`${option} must be a header name (letters, digits and -), true or false; found ${describe(value)}. Pass for example 'x-request-id'.`)
}

const requestIdRenames: Readonly<Record<string, string>> = {
  trustUpstream: '`requestId.trustUpstream` was renamed to `upstream.trust` in 1.0. Pass { upstream: { trust: true } }.',
  header: '`requestId.header` was removed in 1.0: an incoming id is read only from a trusted upstream, so a client cannot choose its request id. Pass { upstream: { trust: true, requestIdHeader: \'x-request-id\' } } where every caller is one of your own services, or remove it.',
  traceparent: '`requestId.traceparent` was renamed to `upstream.traceparent` in 1.0 (continued only with `upstream.trust`). Pass { upstream: { trust: true, traceparent: true } }.',
  baggage: '`requestId.baggage` was renamed to `upstream.baggage` in 1.0. Pass { upstream: { trust: true, baggage: { keys: [\'tenant\'] } } }.',
  startTrace: '`requestId.startTrace` was renamed to `startTrace` in 1.0 (a top-level option). Pass { startTrace: true }.'
}

const upstreamKnown = ['trust', 'requestIdHeader', 'traceparent', 'baggage'] as const

/** The id-related options every adapter takes, as they come in. */
export interface IdentityOptions {
  readonly requestId?: unknown
  readonly upstream?: unknown
  readonly startTrace?: unknown
}

/**
 * Validates the id-related options of an adapter (`requestId`, `upstream`,
 * `startTrace`) once, when a server is set up; undefined when none is given
 * (the adapter then keeps its framework's own ids). `where` names the
 * options object in messages, e.g. "expressRequestLocals(options)".
 */
export function compileRequestIdPolicy (options: IdentityOptions, where: string): RequestIdPolicy | undefined {
  if (options.requestId === undefined && options.upstream === undefined && options.startTrace === undefined) return undefined
  const requestId = checkOptionsObject<RequestIdOptions>(options.requestId === undefined ? {} : options.requestId, {
    where: `${where}.requestId`,
    known: ['echoHeader', 'generate'],
    example: '{ echoHeader: true }',
    renamed: requestIdRenames
  })
  const startTrace = booleanOption(options.startTrace, false, `${where}.startTrace`)
  const upstream = options.upstream === undefined ? undefined : compileUpstream(options.upstream, `${where}.upstream`)
  const { generate } = requestId
  if (generate !== undefined && typeof generate !== 'function') {
    throw optionsError(`${where}.requestId.generate must be a function (req) => string; found ${describe(generate)}. Pass for example (req) => randomUUID().`)
  }
  const trusted = upstream?.trust === true
  const header = trusted ? upstream.requestIdHeader : undefined
  return {
    header,
    echoHeader: headerName(requestId.echoHeader, upstream?.requestIdHeader ?? DEFAULT_HEADER, `${where}.requestId.echoHeader`),
    traceparent: trusted && upstream.traceparent,
    startTrace,
    baggage: trusted ? upstream.baggage : undefined,
    generate
  }
}

interface Upstream {
  readonly trust: boolean
  readonly requestIdHeader: string | undefined
  readonly traceparent: boolean
  readonly baggage: BaggagePolicy | undefined
}

function compileUpstream (options: unknown, where: string): Upstream {
  const upstream = checkOptionsObject<UpstreamOptions>(options, {
    where,
    known: upstreamKnown,
    example: '{ trust: true }'
  })
  if (typeof upstream.trust !== 'boolean') {
    throw optionsError(
      `${where}.trust must be true or false; found ${describe(upstream.trust)}. ` +
      'Pass trust: true only where every caller is one of your own services (behind a gateway that strips x-request-id, traceparent and baggage from outside traffic), false otherwise.'
    )
  }
  const requestIdHeader = upstream.requestIdHeader === undefined ? DEFAULT_HEADER : upstream.requestIdHeader
  if ((requestIdHeader as unknown) === true) {
    throw optionsError(`${where}.requestIdHeader must be a header name or false; found true. Pass for example 'x-request-id'.`)
  }
  return {
    trust: upstream.trust,
    requestIdHeader: headerName(requestIdHeader, DEFAULT_HEADER, `${where}.requestIdHeader`),
    traceparent: booleanOption(upstream.traceparent, true, `${where}.traceparent`),
    baggage: upstream.baggage === undefined ? undefined : compileBaggagePolicy(upstream.baggage, `${where}.baggage`)
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

function freshId (policy: RequestIdPolicy, request: unknown): string {
  if (policy.generate === undefined) return randomUUID()
  const id = (policy.generate as (req: unknown) => unknown)(request)
  return typeof id === 'string' && validateRequestId(id) === undefined ? id : randomUUID()
}

/**
 * Decides the id of one incoming request from its raw headers (the flat
 * name/value list of `IncomingMessage.rawHeaders`, which keeps duplicates
 * apart): the accepted header when valid, otherwise a fresh id; and, as the
 * policy allows, the trace and baggage it continues. One pass; it throws
 * only what `generate` throws.
 */
export function resolveRequestId (policy: RequestIdPolicy, rawHeaders: readonly string[], request?: unknown): IncomingRequestId {
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
  if (incoming === undefined) return { id: freshId(policy, request), trace, baggage: members, rejected: undefined }
  const rejected = incomingCount > 1 ? 'duplicated' : validateRequestId(incoming)
  return { id: rejected === undefined ? incoming : freshId(policy, request), trace, baggage: members, rejected }
}

/**
 * Records what a request was given when its scope opened: its id, its trace,
 * and the baggage locals. Baggage only fills locals the application left
 * unset: a value from `defaults` or from middleware that ran before the
 * scope opened (Express `res.locals`) was chosen by the application for
 * this request, and a header never overrides it.
 */
export function attachIncoming (store: Store, id: string, incoming: IncomingRequestId | undefined): void {
  attachRequestId(store, id, incoming?.trace)
  const members = incoming?.baggage
  if (members === undefined) return
  for (const key of Object.keys(members)) {
    if (store[key] === undefined) store[key] = members[key]
  }
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
