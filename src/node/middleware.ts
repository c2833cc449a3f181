import type { IncomingMessage, ServerResponse } from 'node:http'
import { sharedStorage, type Store } from '../core/storage.js'
import { openRequestScope, requestStore, scopeRequestEvents, type NodeScopePolicy } from './request-scope.js'

// How a Connect-style middleware, (req, res, next), opens a request's scope:
// the Express middleware, and NestJS on Fastify (where @fastify/middie calls
// middleware with the raw request and response). What differs between
// frameworks (where a store opened earlier for the request is found, where
// the framework keeps the store) is fixed when the middleware is made: the
// Express middleware is on the measured hot path, and a request must cost
// the store and nothing more.

const storage = sharedStorage()

/**
 * The `next` callback of Connect-style middleware.
 *
 * @example
 * const next: MiddlewareNext = (err) => { if (err !== undefined) console.error(err) }
 */
export type MiddlewareNext = (err?: unknown) => void

/**
 * How a framework keeps a request's store, where it differs from a plain
 * node:http request's.
 *
 * @example
 * const framework: MiddlewareFramework<IncomingMessage, ServerResponse & { locals: Store }> = {
 *   adoptStore: (store, req, res) => { res.locals = store }
 * }
 */
export interface MiddlewareFramework<Req extends IncomingMessage, Res extends ServerResponse> {
  /**
   * The store this request was given already (the middleware mounted twice,
   * or by a second installed copy), if any. Default: the store its events
   * run in, {@link requestStore}.
   */
  openedStore?: (req: Req, res: Res) => Store | undefined
  /** Hands a new store to the framework before its scope opens (Express makes it `res.locals`). Default: nothing. */
  adoptStore?: (store: Store, req: Req, res: Res) => void
  /** Makes the request's and the response's events run in the store. Default: {@link scopeRequestEvents}. */
  scopeEvents?: (store: Store, req: Req, res: Res) => void
}

/**
 * The middleware that runs `next` in each request's scope: the store the
 * request was given first, when it has one (a middleware mounted twice keeps
 * one store per request), else a new one made from `defaults` and opened with
 * {@link openRequestScope}. An error thrown by a `defaults` function goes to
 * `next(err)`, as any middleware's error does. `name` names the middleware
 * in stack traces and in the framework's middleware listings.
 *
 * @example
 * app.use(requestScopeMiddleware('openMyRequestScope', compileNodeScopeOptions<IncomingMessage>(options, 'myRequestLocals(options)')))
 */
export function requestScopeMiddleware<Req extends IncomingMessage, Res extends ServerResponse> (
  name: string,
  policy: NodeScopePolicy<Req>,
  framework: MiddlewareFramework<Req, Res> = {}
): (req: Req, res: Res, next: MiddlewareNext) => void {
  const { makeStore } = policy
  const { openedStore = requestStore, adoptStore, scopeEvents = scopeRequestEvents } = framework

  function openScopeAndContinue (req: Req, res: Res, next: MiddlewareNext): void {
    const opened = openedStore(req, res)
    if (opened !== undefined) {
      storage.run(opened, next)
      return
    }
    let store: Store
    try {
      store = makeStore(req)
    } catch (err) {
      next(err)
      return
    }
    if (adoptStore !== undefined) adoptStore(store, req, res)
    openRequestScope(store, req, res, policy, scopeEvents)
    storage.run(store, next)
  }
  Object.defineProperty(openScopeAndContinue, 'name', { value: name })
  return openScopeAndContinue
}
