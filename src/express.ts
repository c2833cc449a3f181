import type { NextFunction, Request, Response } from 'express'
import { describe, optionsError } from './core/errors.js'
import { compileNodeScopeOptions, openRequestScope, requestStore, scopeExpressRequestEvents, type NodeScopeOptions } from './node/request-scope.js'
import { requestOf } from './core/scope-state.js'
import { sharedStorage, type Store } from './core/storage.js'
import { compileDefaults } from './core/store.js'
import type { RequestLocals } from './core/request-locals.js'

/**
 * Options of the Express middleware.
 *
 * @example
 * app.use(expressRequestLocals({
 *   defaults: (req) => ({ tenant: String(req.headers['x-tenant'] ?? 'public') })
 * }))
 */
export interface ExpressRequestLocalsOptions extends NodeScopeOptions {
  /**
   * The values each request starts with: a function called per request, or a
   * plain-data object copied per request (never shared between requests).
   */
  defaults?: Partial<RequestLocals> | ((req: Request) => Partial<RequestLocals>)
}

/**
 * The middleware `expressRequestLocals()` returns.
 *
 * @example
 * const locals: ExpressRequestLocalsMiddleware = expressRequestLocals()
 * app.use(locals)
 */
export type ExpressRequestLocalsMiddleware = (req: Request, res: Response, next: NextFunction) => void

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
export function expressRequestLocals (options: ExpressRequestLocalsOptions = {}): ExpressRequestLocalsMiddleware {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw optionsError(`The request-locals middleware options must be an object; found ${describe(options)}. Pass for example { defaults: { tenant: 'public' } }, or nothing.`)
  }
  const makeStore = compileDefaults<Request>(options.defaults, 'The request-locals middleware option `defaults`')
  const policy = compileNodeScopeOptions(options, 'The request-locals middleware option')
  const storage = sharedStorage()

  return function openExpressRequestScope (req: Request, res: Response, next: NextFunction): void {
    // Mounted twice (an app and a router, or a sub-app): the same request
    // keeps the one store it was given first.
    const earlier = res.locals as Store | undefined
    const opened = earlier !== undefined && requestOf(earlier) === req ? earlier : requestStore(req)
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
    // The store becomes res.locals: one bag per request instead of two that
    // drift apart. Values that middleware mounted earlier already put in
    // res.locals are kept, and win over defaults (they are this request's).
    for (const key in earlier) store[key] = earlier[key]
    res.locals = store as Response['locals']
    openRequestScope(store, req, res, policy, scopeExpressRequestEvents)
    storage.run(store, next)
  }
}

export type { RequestIdOptions, RequestIdRejection } from './headers/request-id.js'
export type { InboundBaggageOptions } from './headers/baggage.js'
export type { DebugLogger } from './node/request-scope.js'
