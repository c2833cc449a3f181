import type { Store } from './storage.js'

// What the library keeps about a scope besides its values hangs off the store
// under private symbols, one per feature: a property write per request, no
// extra allocation, no module-level map, and it becomes unreachable together
// with the store. Symbol keys are invisible through the proxy (Object.keys,
// JSON, inspect, `in`) and are not copied into nested scopes.

/** The adapter's request object (a FastifyRequest, an IncomingMessage …). */
export const kRequest = Symbol('request-locals.request')

type StoreWithState = Store & { [kRequest]?: unknown }

/** Links a store to the framework request it serves. */
export function attachRequest (store: Store, request: unknown): void {
  (store as StoreWithState)[kRequest] = request
}
