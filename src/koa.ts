import type { IncomingMessage } from 'node:http'
import type { Context, Middleware, Next } from 'koa'
import type { RequestIdOptions } from './headers/request-id.js'
import { compileNodeScopeOptions, openRequestScope, requestStore, type NodeScopeOptions } from './node/request-scope.js'
import { sharedStorage } from './core/storage.js'
import { copyOwnValues } from './core/store.js'
import { requestIdOf } from './core/scope-state.js'
import { echoAtHead } from './node/echo-header.js'

// Koa runs on node:http: a Koa request is a node:http request and response
// wrapped in a context, so the scope opens the way it does for Express
// (node/request-scope.ts), and the request's own events ('data' and 'end'
// that a body parser reads, 'close' of an abort) run in the store too.
//
// The store is `ctx.state`. Koa documents ctx.state as the namespace for
// passing values through middleware and to views, as res.locals is in
// Express; two bags per request would drift apart. It also matters for the
// one place Koa calls application code outside the request's async context:
// Koa attaches its response and error handling (`respond`, `ctx.onerror`, the
// app's 'error' event) to the promise of the middleware chain from outside
// that chain, so an `app.on('error', (err, ctx) => …)` listener runs in the
// context of the caller, not the request's; through ctx.state it still reads
// this request's values.

/**
 * Options of the Koa middleware: the options every adapter takes
 * ({@link RequestScopeOptions}), with `defaults` given the Koa context,
 * `requestId.generate` the Node.js request (`ctx.req`: the id is decided
 * where the scope opens, as in the other node:http adapters), and a `logger`
 * for replaced request ids.
 *
 * @example
 * app.use(koaRequestLocals({
 *   defaults: (ctx) => ({ tenant: ctx.get('x-tenant') || 'public' }),
 *   requestId: { echoHeader: true }
 * }))
 */
export interface KoaRequestLocalsOptions extends Omit<NodeScopeOptions<Context>, 'requestId'> {
  /** How a request's own id is made and echoed; `generate` is given `ctx.req`. */
  requestId?: RequestIdOptions<IncomingMessage>
}

/**
 * The Koa middleware (Koa 2 and 3): opens one scope per request, so
 * `requestLocal` works in every middleware mounted after it, in the body
 * parsers and upload handlers reading the request (koa-body, @koa/multer,
 * whichever order they are mounted in) and in the request's and response's
 * event listeners. The store is `ctx.state`: views and middleware that use
 * ctx.state and `requestLocal` see the same values. Mount it first. Koa is
 * not loaded by this module.
 *
 * @example
 * import Koa from 'koa'
 * import { koaRequestLocals } from 'request-locals/koa'
 * import { requestLocal } from 'request-locals'
 *
 * const app = new Koa()
 * app.use(koaRequestLocals({ defaults: { tenant: 'public' } }))
 * app.use(async (ctx, next) => { requestLocal.user = await auth(ctx.get('authorization')); await next() })
 */
export function koaRequestLocals (options: KoaRequestLocalsOptions = {}): Middleware {
  const policy = compileNodeScopeOptions<Context>(options, 'koaRequestLocals(options)')
  const { makeStore } = policy
  const echoHeader = policy.requestId?.echoHeader
  const storage = sharedStorage()

  return function openKoaRequestScope (ctx: Context, next: Next): Promise<unknown> {
    // Mounted twice (an app and a mounted sub-app): the same request keeps
    // the one store it was given first.
    const opened = requestStore(ctx.req)
    if (opened !== undefined) return storage.run(opened, next)
    // A throwing `defaults` function rejects the middleware chain, so the
    // error takes Koa's own error path, as a throw in any middleware does.
    const store = makeStore(ctx)
    // Values that middleware mounted earlier already put in ctx.state are
    // kept, and win over defaults (they are this request's). Own keys only:
    // an inherited key is not this request's.
    const earlier = ctx.state as object | undefined
    if (typeof earlier === 'object' && earlier !== null) copyOwnValues(store, earlier)
    ctx.state = store
    openRequestScope(store, ctx.req, ctx.res, policy)
    if (echoHeader !== undefined) echoAtHead(ctx.res, echoHeader, requestIdOf(store))
    return storage.run(store, next)
  }
}

export type { RequestIdOptions, RequestIdRejection, UpstreamOptions } from './headers/request-id.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
export type { InboundBaggageOptions } from './headers/baggage.js'
export type { DebugLogger } from './node/request-scope.js'
