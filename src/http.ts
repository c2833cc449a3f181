import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { describe, invalidArgumentError, uncalledFactoryError } from './core/errors.js'
import { compileNodeScopeOptions, isRequestLike, openRequestScope, requestStore, type NodeScopeOptions } from './node/request-scope.js'
import { sharedStorage } from './core/storage.js'

/**
 * Options of {@link withRequestLocals}: the options every adapter takes
 * ({@link RequestScopeOptions}), with `defaults` and `requestId.generate`
 * given the request, and a `logger` for replaced request ids.
 *
 * @example
 * withRequestLocals(handler, { defaults: (req) => ({ tenant: String(req.headers['x-tenant'] ?? 'public') }) })
 */
export interface HttpRequestLocalsOptions<Req extends IncomingMessage | Http2ServerRequest = IncomingMessage> extends NodeScopeOptions<Req> {}

/**
 * Wraps a plain `node:http` request handler so that each request runs in its
 * own scope: `requestLocal` works in the handler, in everything it awaits or
 * schedules, and in the request's and response's event listeners (`data`,
 * `end`, `close` …), which Node emits from the socket's context. Returns what
 * the handler returns. An error thrown by a `defaults` function is thrown by
 * the wrapped handler, as if the handler had thrown it.
 *
 * It wraps `node:http2`'s compatibility API handlers the same way (type the
 * handler's parameters as `Http2ServerRequest` and `Http2ServerResponse`),
 * cleartext or TLS: a request's scope ends when its stream does — finished,
 * reset by the client, its session destroyed or sent a GOAWAY, timed out.
 *
 * @example
 * import http from 'node:http'
 * import { withRequestLocals } from 'request-locals/http'
 * import { requestLocal } from 'request-locals'
 *
 * const server = http.createServer(withRequestLocals(async (req, res) => {
 *   requestLocal.user = await auth(req.headers.authorization)
 *   res.end(await greeting())
 * }, { defaults: { tenant: 'public' } }))
 *
 * @example
 * import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
 *
 * const secure = http2.createSecureServer({ key, cert }, withRequestLocals(async (req: Http2ServerRequest, res: Http2ServerResponse) => {
 *   requestLocal.user = await auth(req.headers.authorization)
 *   res.end(await greeting())
 * }))
 */
export function withRequestLocals<Req extends IncomingMessage, Res extends ServerResponse, R> (
  handler: (req: Req, res: Res) => R,
  options?: HttpRequestLocalsOptions<Req>
): (req: Req, res: Res) => R
export function withRequestLocals<Req extends Http2ServerRequest, Res extends Http2ServerResponse, R> (
  handler: (req: Req, res: Res) => R,
  options?: HttpRequestLocalsOptions<Req>
): (req: Req, res: Res) => R
export function withRequestLocals<Req extends IncomingMessage | Http2ServerRequest, Res extends ServerResponse | Http2ServerResponse, R> (
  handler: (req: Req, res: Res) => R,
  options: HttpRequestLocalsOptions<Req> = {}
): (req: Req, res: Res) => R {
  if (typeof handler !== 'function') {
    // withRequestLocals used as a handler itself: http.createServer(withRequestLocals)
    // calls it with (req, res), and the request would hang.
    if (isRequestLike(handler) && arguments.length === 2) {
      const error = uncalledFactoryError('http.createServer(withRequestLocals)', 'http.createServer(withRequestLocals(handler))')
      // Answer the request that revealed it, then throw: the server stops at
      // its first request instead of leaving every client waiting.
      const res = options as unknown as Partial<ServerResponse>
      if (typeof res.end === 'function' && res.headersSent === false) {
        res.statusCode = 500
        res.end(`${error.message}\n`)
      }
      throw error
    }
    throw invalidArgumentError(`withRequestLocals(handler, options) expects handler to be a function (req, res) => …; found ${describe(handler)}. Pass the request handler first: withRequestLocals((req, res) => { … }, options).`)
  }
  const policy = compileNodeScopeOptions<Req>(options, 'withRequestLocals(handler, options)')
  const { makeStore } = policy
  const storage = sharedStorage()

  return function handleInRequestScope (req: Req, res: Res): R {
    // Wrapped twice (a handler delegating to another wrapped one): the same
    // request keeps the one store it was given first.
    let store = requestStore(req)
    if (store === undefined) {
      store = makeStore(req)
      openRequestScope(store, req, res, policy)
    }
    return storage.run(store, handler, req, res)
  }
}

export type { RequestIdOptions, RequestIdRejection, UpstreamOptions } from './headers/request-id.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
export type { InboundBaggageOptions } from './headers/baggage.js'
export type { DebugLogger } from './node/request-scope.js'
