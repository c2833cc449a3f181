import type { ServerResponse } from 'node:http'
import type { Store } from './storage.js'

// What the library keeps about a scope besides its values hangs off the store
// under private symbols, one per feature: a property write per request, no
// extra allocation, no module-level map, and it becomes unreachable together
// with the store. Symbol keys are invisible through the proxy (Object.keys,
// JSON, inspect, `in`) and are not copied into nested scopes. They are
// registered (Symbol.for), like the storage, so that two installed copies of
// the package, which share the storage, also read each other's state.

/** The adapter's request object (a FastifyRequest, an IncomingMessage …). */
export const kRequest = Symbol.for('request-locals.request')

/** The node:http response the scope serves: its 'close' ends the scope. */
export const kResponse = Symbol.for('request-locals.response')

type StoreWithState = Store & { [kRequest]?: unknown, [kResponse]?: ServerResponse }

/** Links a store to the framework request it serves. */
export function attachRequest (store: Store, request: unknown): void {
  (store as StoreWithState)[kRequest] = request
}

/**
 * Links a store to the node:http response it serves, so that per-request
 * resources can be released when that response closes. Every adapter calls
 * it when it opens a request's scope (Fastify passes `reply.raw`).
 *
 * @example
 * const store = makeStore(req)
 * attachRequest(store, req)
 * attachResponse(store, res)
 * storage.run(store, next)
 */
export function attachResponse (store: Store, response: ServerResponse): void {
  (store as StoreWithState)[kResponse] = response
}

/** The framework request a store serves, if an adapter attached one. */
export function requestOf (store: Store): unknown {
  return (store as StoreWithState)[kRequest]
}

/** The node:http response a store serves, if an adapter attached one. */
export function responseOf (store: Store): ServerResponse | undefined {
  return (store as StoreWithState)[kResponse]
}
