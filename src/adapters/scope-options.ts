import { booleanOption, checkOptionsObject } from '../core/options.js'
import { compileRequestIdPolicy, type RequestIdOptions, type RequestIdPolicy, type UpstreamOptions } from '../headers/request-id.js'
import { compileDefaults, type StoreFactory } from '../core/store.js'
import type { RequestLocals } from '../core/request-locals.js'

// The one option shape every adapter takes (Fastify, Express, node:http and
// HTTP/2, Koa, Hono, NestJS), and the one place it is validated. An adapter
// adds its own keys (a logger, Fastify's scopeRawEvents) by naming them; all
// the others are refused, so a misspelling is an error at start-up.

/**
 * The options every request-locals adapter takes. `Req` is what `defaults`
 * receives (the framework's request); `IdReq` what `requestId.generate`
 * receives (the same, except in Fastify, where the id is made from the raw
 * request before the Fastify request exists).
 *
 * @example
 * const options: RequestScopeOptions<IncomingMessage> = {
 *   defaults: { tenant: 'public' },
 *   requestId: { echoHeader: true },
 *   upstream: { trust: process.env.BEHIND_GATEWAY === '1', baggage: { keys: ['tenant'] } },
 *   endResourcesBeforeResponse: true
 * }
 */
export interface RequestScopeOptions<Req = unknown, IdReq = Req> {
  /**
   * The values each request starts with: a function called per request, or a
   * plain-data object (strings, numbers, booleans, null, arrays and plain
   * objects of them) copied per request, never shared between requests.
   * Anything else (a class instance, Map, Date, function) belongs in the
   * function form, which builds it per request.
   */
  defaults?: Partial<RequestLocals> | ((req: Req) => Partial<RequestLocals>)
  /**
   * How a request's own id is made and echoed. Without `requestId`,
   * `upstream` and `startTrace`, the framework's own id is kept (Fastify's
   * `req-1` …; elsewhere a UUID made on first read).
   */
  requestId?: RequestIdOptions<IdReq>
  /** What is continued from a trusted caller: its id, trace and baggage. */
  upstream?: UpstreamOptions
  /**
   * Start a trace for each request that continues none (a random trace id,
   * marked sampled): `traceId()` and logs carry it, and outgoing calls carry
   * it on in `traceparent`. For edge services without OpenTelemetry. Default false.
   */
  startTrace?: boolean
  /**
   * End the request's resources (commit or roll back a transaction) before
   * the response's headers are written, with no code per route: the client
   * never sees a success whose commit failed, and its next request reads its
   * own writes. A failed end becomes a 500. Resources then end at the first
   * write of the response (`res.json`, `res.end`, `res.writeHead`, the first
   * chunk of a stream), so a streamed response must read what it needs from
   * them before it starts. Default false: resources end when the response
   * has been sent.
   */
  endResourcesBeforeResponse?: boolean
}

/** The keys of {@link RequestScopeOptions}, which every adapter accepts. */
export const requestScopeKeys: readonly string[] = ['defaults', 'requestId', 'upstream', 'startTrace', 'endResourcesBeforeResponse']

/** {@link RequestScopeOptions} once validated: what an adapter needs per request. */
export interface RequestScopePolicy<Req> {
  /** Makes one request's store, from `defaults`. */
  readonly makeStore: StoreFactory<Req>
  /** The request id policy, or undefined to keep the framework's own ids. */
  readonly requestId: RequestIdPolicy | undefined
  readonly endResourcesBeforeResponse: boolean
}

/**
 * Validates an adapter's options once, at registration: a plain object
 * holding only {@link requestScopeKeys} and the adapter's own `adapterKeys`,
 * each of the right type. `where` names the options in messages the way the
 * user wrote them, e.g. "expressRequestLocals(options)". Throws
 * ERR_REQUEST_LOCALS_OPTIONS naming the key and the fix.
 *
 * @example
 * const policy = compileRequestScopeOptions<Context>(options, 'koaRequestLocals(options)', ['logger'])
 */
export function compileRequestScopeOptions<Req> (options: unknown, where: string, adapterKeys: readonly string[] = []): RequestScopePolicy<Req> {
  const checked = checkOptionsObject<RequestScopeOptions<Req>>(options, {
    where,
    known: [...requestScopeKeys, ...adapterKeys],
    example: "{ defaults: { tenant: 'public' } }, or nothing"
  })
  return {
    makeStore: compileDefaults<Req>(checked.defaults, `${where}.defaults`),
    requestId: compileRequestIdPolicy(checked, where),
    endResourcesBeforeResponse: booleanOption(checked.endResourcesBeforeResponse, false, `${where}.endResourcesBeforeResponse`)
  }
}
