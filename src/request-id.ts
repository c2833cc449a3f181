import { randomUUID } from 'node:crypto'
import { describe, optionsError } from './errors.js'
import { requestIdOf, traceIdOf } from './scope-state.js'
import { sharedStorage } from './storage.js'

/**
 * How a request gets its id. Without `header`, every request gets a fresh
 * `crypto.randomUUID()`: trusting a client-supplied id is opt-in.
 *
 * @example
 * await app.register(fastifyRequestLocals, {
 *   requestId: { header: 'x-request-id', echoHeader: true }
 * })
 */
export interface RequestIdOptions {
  /**
   * Accept an incoming id from this request header (`true` means
   * `x-request-id`). It is used only when it is 1–200 characters of
   * `A-Z a-z 0-9 - _ . : @`; anything else is replaced by a fresh id.
   */
  header?: string | boolean
  /**
   * Send the request id back in this response header (`true` means the
   * `header` name, or `x-request-id`).
   */
  echoHeader?: string | boolean
  /** Read the trace id of a valid W3C `traceparent` header (default `true`). */
  traceparent?: boolean
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
}

/** The id a request gets, and what the adapter must report about it. */
export interface IncomingRequestId {
  readonly id: string
  /** The trace id of a valid traceparent header, if any. */
  readonly traceId: string | undefined
  /** Set when an incoming id was present but replaced; log it at debug level. */
  readonly rejected: RequestIdRejection | undefined
}

const MAX_LENGTH = 200
const DEFAULT_HEADER = 'x-request-id'
// An HTTP token (RFC 9110) minus the characters that are risky in logs and
// shells, so an accepted id can be echoed and logged verbatim.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const SAFE_ID = /^[A-Za-z0-9\-_.:@]+$/
// W3C Trace Context: version-traceid-parentid-flags, lower-case hex. Later
// versions may append fields after a dash; version ff is invalid.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/
const ZERO_TRACE_ID = '0'.repeat(32)
const ZERO_PARENT_ID = '0'.repeat(16)
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

/**
 * The trace id of a W3C `traceparent` value, or undefined when it is not a
 * valid one (wrong shape, upper-case hex, version ff, all-zero ids).
 *
 * @example
 * traceIdOfTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
 * // '4bf92f3577b34da6a3ce929d0e0e4736'
 */
export function traceIdOfTraceparent (value: string): string | undefined {
  const match = TRACEPARENT.exec(value)
  if (match === null) return undefined
  const [, version, traceId, parentId, rest] = match
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined
  return traceId
}

function headerName (value: unknown, fallback: string, option: string): string | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return fallback
  if (typeof value === 'string' && HEADER_NAME.test(value)) return value.toLowerCase()
  throw optionsError(`${option} must be a header name (letters, digits and -), true or false; found ${typeof value === 'string' ? JSON.stringify(value) : describe(value)}. Pass for example 'x-request-id'.`)
}

/**
 * Validates {@link RequestIdOptions} once, when a server is set up. `where`
 * names the option in messages (e.g. "The request-locals plugin option `requestId`").
 */
export function compileRequestIdPolicy (options: unknown, where: string): RequestIdPolicy {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw optionsError(`${where} must be an object; found ${describe(options)}. Pass for example { header: 'x-request-id', echoHeader: true }.`)
  }
  const { header, echoHeader, traceparent = true } = options as RequestIdOptions
  if (typeof traceparent !== 'boolean') {
    throw optionsError(`${where}.traceparent must be a boolean; found ${describe(traceparent)}.`)
  }
  const accepted = headerName(header, DEFAULT_HEADER, `${where}.header`)
  return {
    header: accepted,
    echoHeader: headerName(echoHeader, accepted ?? DEFAULT_HEADER, `${where}.echoHeader`),
    traceparent
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

/**
 * Decides the id of one incoming request from its raw headers (the flat
 * name/value list of `IncomingMessage.rawHeaders`, which keeps duplicates
 * apart): the accepted header when valid, otherwise a fresh UUID.
 */
export function resolveRequestId (policy: RequestIdPolicy, rawHeaders: readonly string[]): IncomingRequestId {
  let incoming: string | undefined
  let incomingCount = 0
  let traceparent: string | undefined
  let traceparentCount = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (policy.header !== undefined && name.length === policy.header.length && name.toLowerCase() === policy.header) {
      incoming = rawHeaders[i + 1]
      incomingCount++
    } else if (policy.traceparent && name.length === 11 && name.toLowerCase() === 'traceparent') {
      traceparent = rawHeaders[i + 1]
      traceparentCount++
    }
  }
  // Several traceparent headers are invalid by the spec: ignore them all.
  const traceId = traceparentCount === 1 ? traceIdOfTraceparent(traceparent as string) : undefined
  if (incoming === undefined) return { id: randomUUID(), traceId, rejected: undefined }
  const rejected = incomingCount > 1 ? 'duplicated' : validateRequestId(incoming)
  return { id: rejected === undefined ? incoming : randomUUID(), traceId, rejected }
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
 * The trace id of the current request's valid W3C `traceparent` header, or
 * undefined (no header, an invalid one, no request id policy, or outside a scope).
 *
 * @example
 * span.setAttribute('trace_id', traceId() ?? 'none')
 */
export function traceId (): string | undefined {
  const store = storage.getStore()
  return store === undefined ? undefined : traceIdOf(store)
}
