import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, invalidArgumentError, optionsError } from './core/errors.js'
import { compileNodeScopeOptions, openRequestScope, requestStore, type NodeScopeOptions } from './node/request-scope.js'
import { sharedStorage } from './core/storage.js'
import { compileDefaults } from './core/store.js'
import type { RequestLocals } from './core/request-locals.js'

/**
 * Options of {@link withRequestLocals}.
 *
 * @example
 * withRequestLocals(handler, { defaults: (req) => ({ tenant: String(req.headers['x-tenant'] ?? 'public') }) })
 */
export interface HttpRequestLocalsOptions<Req extends IncomingMessage = IncomingMessage> extends NodeScopeOptions {
  /**
   * The values each request starts with: a function called per request, or a
   * plain-data object copied per request (never shared between requests).
   */
  defaults?: Partial<RequestLocals> | ((req: Req) => Partial<RequestLocals>)
}

/**
 * Wraps a plain `node:http` request handler so that each request runs in its
 * own scope: `requestLocal` works in the handler, in everything it awaits or
 * schedules, and in the request's and response's event listeners (`data`,
 * `end`, `close` …), which Node emits from the socket's context. Returns what
 * the handler returns. An error thrown by a `defaults` function is thrown by
 * the wrapped handler, as if the handler had thrown it.
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
 */
export function withRequestLocals<Req extends IncomingMessage, Res extends ServerResponse, R> (
  handler: (req: Req, res: Res) => R,
  options: HttpRequestLocalsOptions<Req> = {}
): (req: Req, res: Res) => R {
  if (typeof handler !== 'function') {
    throw invalidArgumentError(`withRequestLocals(handler, options) expects handler to be a function (req, res) => …; found ${describe(handler)}.`)
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw optionsError(`The withRequestLocals options must be an object; found ${describe(options)}. Pass for example { defaults: { tenant: 'public' } }, or nothing.`)
  }
  const makeStore = compileDefaults<Req>(options.defaults, 'The withRequestLocals option `defaults`')
  const policy = compileNodeScopeOptions(options, 'The withRequestLocals option')
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

export type { RequestIdOptions, RequestIdRejection } from './headers/request-id.js'
export type { InboundBaggageOptions } from './headers/baggage.js'
export type { DebugLogger } from './node/request-scope.js'
