import type { IncomingMessage, ServerResponse } from 'node:http'
import { uncalledFactoryError } from './core/errors.js'
import { compileNodeScopeOptions, isRequestLike, requestStore, scopeExpressRequestEvents, type NodeScopeOptions } from './node/request-scope.js'
import { requestScopeMiddleware } from './node/middleware.js'
import { isDetachedRequest, requestOf } from './core/scope-state.js'
import type { Store } from './core/storage.js'
import { copyOwnValues } from './core/store.js'

// Structural types of our own for what the middleware uses of req, res and
// next, rather than @types/express: Connect users (and anyone without
// @types/express) compile this module's declarations too. Express's own
// Request, Response and NextFunction are assignable to them, and a
// `defaults` function is given Express's request type by inference where
// Express's types are installed.

/**
 * The response as the middleware uses it: a node:http response with Express's
 * (or Connect's) `locals` object.
 *
 * @example
 * function send (res: ExpressLikeResponse) { res.end(String(res.locals.tenant)) }
 */
export interface ExpressLikeResponse extends ServerResponse {
  locals: Record<string, unknown>
}

/**
 * The `next` callback of Express and Connect middleware.
 *
 * @example
 * const next: ExpressLikeNext = (err) => { if (err !== undefined) console.error(err) }
 */
export type ExpressLikeNext = (err?: unknown) => void

/**
 * Options of the Express middleware: the options every adapter takes
 * ({@link RequestScopeOptions}), with `defaults` given the Express request,
 * and a `logger` for replaced request ids.
 *
 * @example
 * app.use(expressRequestLocals({
 *   defaults: (req) => ({ tenant: String(req.headers['x-tenant'] ?? 'public') }),
 *   endResourcesBeforeResponse: true
 * }))
 */
export interface ExpressRequestLocalsOptions<Req extends IncomingMessage = IncomingMessage> extends NodeScopeOptions<Req> {}

/**
 * The middleware `expressRequestLocals()` returns.
 *
 * @example
 * const locals: ExpressRequestLocalsMiddleware = expressRequestLocals()
 * app.use(locals)
 */
export type ExpressRequestLocalsMiddleware<Req extends IncomingMessage = IncomingMessage> = (req: Req, res: ExpressLikeResponse, next: ExpressLikeNext) => void

/**
 * The Express middleware (Express 4 and 5, and Connect-style routers): opens
 * one scope per request, so `requestLocal` works in every middleware, route
 * and error handler mounted after it, and in the body parsers, upload
 * handlers and stream events of the request whichever order they are mounted
 * in. The store is `res.locals`, so templates and `requestLocal` see the same
 * values. Express is not loaded by this module.
 *
 * @example
 * import express from 'express'
 * import { expressRequestLocals } from 'request-locals/express'
 * import { requestLocal } from 'request-locals'
 *
 * const app = express()
 * app.use(expressRequestLocals({ defaults: { tenant: 'public' } }))
 * app.use(express.json())
 * app.use(async (req, res, next) => { requestLocal.user = await auth(req); next() })
 */
export function expressRequestLocals<Req extends IncomingMessage = IncomingMessage> (options: ExpressRequestLocalsOptions<Req> = {}): ExpressRequestLocalsMiddleware<Req> {
  // Passed to app.use() uncalled, the factory is called with (req, res, next)
  // and its return value ignored: every request would hang. Say so instead.
  if (arguments.length === 3 && typeof arguments[2] === 'function' && isRequestLike(arguments[0])) {
    (arguments[2] as ExpressLikeNext)(uncalledFactoryError('app.use(expressRequestLocals)', 'app.use(expressRequestLocals())'))
    return openWithoutOptions
  }
  const policy = compileNodeScopeOptions<Req>(options, 'expressRequestLocals(options)')
  return requestScopeMiddleware<Req, ExpressLikeResponse>('openExpressRequestScope', policy, {
    openedStore: expressStoreOf,
    adoptStore: adoptAsLocals,
    scopeEvents: scopeExpressRequestEvents
  })
}

// Mounted twice (an app and a router, or a sub-app): the same request keeps
// the one store it was given first, also when the chain goes on after the
// client left and the store has let go of the request (detachRequest).
function expressStoreOf (req: IncomingMessage, res: ExpressLikeResponse): Store | undefined {
  const earlier = res.locals as Store | undefined | null
  if (earlier === undefined || earlier === null) return requestStore(req)
  const owner = requestOf(earlier)
  if (owner === req) return earlier
  return owner !== undefined && isDetachedRequest(owner as object) ? earlier : requestStore(req)
}

// The store becomes res.locals: one bag per request instead of two that
// drift apart. Values that middleware mounted earlier already put in
// res.locals are kept, and win over defaults (they are this request's).
// Own keys only: a key inherited from a polluted Object.prototype is not
// this request's, and copying it would make it a local of every request.
function adoptAsLocals (store: Store, _req: IncomingMessage, res: ExpressLikeResponse): void {
  const earlier = res.locals as Store | undefined | null
  if (earlier !== undefined && earlier !== null) copyOwnValues(store, earlier)
  res.locals = store
}

// What a mistaken app.use(expressRequestLocals) returns, so that the type
// stays a middleware; it is never mounted.
function openWithoutOptions (_req: IncomingMessage, _res: ExpressLikeResponse, next: ExpressLikeNext): void {
  next(uncalledFactoryError('app.use(expressRequestLocals)', 'app.use(expressRequestLocals())'))
}

export type { RequestIdOptions, RequestIdRejection, UpstreamOptions } from './headers/request-id.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
export type { InboundBaggageOptions } from './headers/baggage.js'
export type { DebugLogger } from './node/request-scope.js'
