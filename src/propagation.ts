import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { compileOutboundBaggageKeys, serializeBaggage } from './headers/baggage.js'
import { booleanOption, checkOptionsObject } from './core/options.js'
import { describe, optionsError } from './core/errors.js'
import { isHttpToken } from './headers/http-token.js'
import { validateRequestId } from './headers/request-id.js'
import { requestIdOf, traceOf } from './core/scope-state.js'
import { sharedStorage, type Store } from './core/storage.js'
import { outgoingTraceparent } from './headers/trace-context.js'
import type { RequestLocals } from './core/request-locals.js'

// Outgoing calls carry the calling request's id, trace and chosen locals.
// Node's fetch is undici, and undici (bundled or the npm package, same
// channel names) publishes 'undici:request:create' synchronously in the
// Request constructor, inside the caller's async context: the subscriber
// finds the calling request's store and adds headers, with no wrapper around
// fetch, no dispatcher to install and no dependency.

/**
 * What outgoing calls carry.
 *
 * @example
 * propagateRequestLocals({ baggage: ['tenant'], origins: ['http://billing.internal:8080'] })
 */
export interface PropagationOptions {
  /** The header that carries the request id (default `x-request-id`; `false` sends none). */
  requestIdHeader?: string | false
  /** Send a W3C `traceparent` continuing the request's trace, when it has one (default true). */
  traceparent?: boolean
  /**
   * Locals sent as W3C `baggage` (default none): strings, numbers, booleans
   * and bigints, percent-encoded; objects (a user) are never sent.
   */
  baggage?: ReadonlyArray<keyof RequestLocals & string>
  /**
   * Only calls to these origins (`'https://api.internal'`) get the headers;
   * without it, every call made inside a request does. `propagationHeaders()`
   * ignores it: its caller chooses where the headers go.
   */
  origins?: readonly string[]
}

interface Propagation {
  readonly requestIdHeader: string | undefined
  readonly traceparent: boolean
  readonly baggage: readonly string[]
  readonly origins: ReadonlySet<string> | undefined
}

const CHANNEL = 'undici:request:create'
const storage = sharedStorage()

function compilePropagation (options: unknown, where: string): Propagation {
  const { requestIdHeader = 'x-request-id', traceparent = true, baggage = [], origins } = checkOptionsObject<PropagationOptions>(options, {
    where,
    known: ['requestIdHeader', 'traceparent', 'baggage', 'origins'],
    example: "{ baggage: ['tenant'] }, or nothing"
  })
  if (requestIdHeader !== false && (typeof requestIdHeader !== 'string' || !isHttpToken(requestIdHeader))) {
    throw optionsError(`${where}.requestIdHeader must be a header name or false; found ${describe(requestIdHeader)}. Pass for example 'x-request-id'.`)
  }
  booleanOption(traceparent, true, `${where}.traceparent`)
  return {
    requestIdHeader: requestIdHeader === false ? undefined : requestIdHeader.toLowerCase(),
    traceparent,
    baggage: compileOutboundBaggageKeys(baggage, `${where}.baggage`),
    origins: origins === undefined ? undefined : compileOrigins(origins, `${where}.origins`)
  }
}

function compileOrigins (origins: unknown, option: string): ReadonlySet<string> {
  // The value itself is not shown: only its type and place.
  const fail = (found: string): never => {
    throw optionsError(`${option} must be an array of origins such as 'https://api.internal:8443'; found ${found}.`)
  }
  if (!Array.isArray(origins)) fail(describe(origins))
  const set = new Set<string>()
  for (const [index, origin] of (origins as unknown[]).entries()) {
    if (typeof origin !== 'string' || !URL.canParse(origin)) fail(`${typeof origin === 'string' ? 'a string that is not a URL' : describe(origin)} at index ${index}`)
    set.add(new URL(origin as string).origin)
  }
  return set
}

// Puts each header the current scope sends into `target` through `put`:
// module-level functions rather than a closure per call.
function eachHeader<T> (store: Store, propagation: Propagation, target: T, put: (target: T, name: string, value: string) => void): void {
  if (propagation.requestIdHeader !== undefined) {
    const id = requestIdOf(store)
    // A custom id generator may make ids that are not safe as a header value.
    if (validateRequestId(id) === undefined) put(target, propagation.requestIdHeader, id)
  }
  const trace = propagation.traceparent ? traceOf(store) : undefined
  if (trace !== undefined) put(target, 'traceparent', outgoingTraceparent(trace))
  if (propagation.baggage.length > 0) {
    const baggage = serializeBaggage(store, propagation.baggage)
    if (baggage !== undefined) put(target, 'baggage', baggage)
  }
}

function putInObject (headers: Record<string, string>, name: string, value: string): void {
  headers[name] = value
}

/**
 * The headers an outgoing call made now should carry — `x-request-id`, a
 * `traceparent` continuing the request's trace (with a new span id for this
 * call) when it has one, and `baggage` for the chosen locals — or `{}`
 * outside any scope. For HTTP clients that are not undici (axios, got,
 * `http.request`).
 *
 * @example
 * import { propagationHeaders } from 'request-locals/propagation'
 *
 * await axios.get(url, { headers: { ...propagationHeaders({ baggage: ['tenant'] }), accept: 'application/json' } })
 */
export function propagationHeaders (options: PropagationOptions = {}): Record<string, string> {
  const propagation = compilePropagation(options, 'propagationHeaders(options)')
  const headers: Record<string, string> = {}
  const store = storage.getStore()
  if (store !== undefined) eachHeader(store, propagation, headers, putInObject)
  return headers
}

let active: Propagation | undefined

interface UndiciRequest {
  origin?: unknown
  // An array of names and values (undici 6 and later), or one string of
  // "name: value\r\n" lines (earlier versions).
  headers?: unknown
  addHeader: (name: string, value: string) => unknown
}

function hasHeader (headers: unknown, name: string): boolean {
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      const header = headers[i] as unknown
      if (typeof header === 'string' && header.length === name.length && header.toLowerCase() === name) return true
    }
    return false
  }
  return typeof headers === 'string' && headers.toLowerCase().split('\r\n').some((line) => line.startsWith(`${name}:`))
}

function addPropagationHeaders (message: unknown): void {
  const propagation = active
  const store = storage.getStore()
  if (propagation === undefined || store === undefined) return
  const request = (message as { request: UndiciRequest }).request
  if (propagation.origins !== undefined && !propagation.origins.has(String(request.origin))) return
  eachHeader(store, propagation, request, addUnlessSet)
}

function addUnlessSet (request: UndiciRequest, name: string, value: string): void {
  // A header the caller set explicitly wins.
  if (!hasHeader(request.headers, name)) request.addHeader(name, value)
}

/**
 * Makes every outgoing `fetch` (Node's own) and `undici` call made inside a
 * request carry the request's id, its trace (a `traceparent` with a new span
 * id per call) when it has one, and the chosen locals as `baggage`. Calls
 * made outside any scope carry nothing; a header the caller set is kept.
 * Call it once at start-up; calling it again replaces the options. Returns
 * a function that turns it off. When OpenTelemetry's HTTP/undici
 * instrumentation already sends `traceparent`, pass `traceparent: false`.
 *
 * @example
 * import { propagateRequestLocals } from 'request-locals/propagation'
 *
 * propagateRequestLocals({ baggage: ['tenant'] })
 * app.get('/orders', async () => (await fetch('http://billing.internal/invoices')).json())
 */
export function propagateRequestLocals (options: PropagationOptions = {}): () => void {
  const propagation = compilePropagation(options, 'propagateRequestLocals(options)')
  if (active === undefined) subscribe(CHANNEL, addPropagationHeaders)
  active = propagation
  return function stopPropagatingRequestLocals (): void {
    if (active === undefined) return
    unsubscribe(CHANNEL, addPropagationHeaders)
    active = undefined
  }
}
