// Every symbol the package keys its state with, in one place.
//
// Two installed copies of the package (an application's and one a library
// bundles, of the same or another version) must act as one, so every key
// naming state that more than one copy may write or read is registered
// (Symbol.for) and its value follows a protocol every version keeps:
// plain data, or objects used only through the members documented here,
// never through a class (`instanceof` is false across copies). A change of
// shape takes a new key (or, for the ending, a higher `protocol`); a key is
// never reused for another shape. Unregistered symbols name state only the
// object that wrote it ever reads.

/** On globalThis: the process-wide AsyncLocalStorage. */
export const kSharedStorage = Symbol.for('request-locals')
/** On globalThis: `{ enabled: boolean }`, whether any copy turned debug mode on. */
export const kDebug = Symbol.for('request-locals.debug')
/** On globalThis: `{ open: number }`, the requests with an open scope, counted by every copy. */
export const kInFlight = Symbol.for('request-locals.in-flight')
/**
 * On globalThis: the frozen, empty, null-prototype object every store
 * inherits from (see core/store.ts), so that each copy recognises the
 * others' stores as plain objects.
 */
export const kStorePrototype = Symbol.for('request-locals.store-prototype')
/** On RequestLocalsError.prototype: `true`, so `instanceof` recognises another copy's errors. */
export const kErrorBrand = Symbol.for('request-locals.error')

// Per-scope state, on the store. Invisible through the proxy (Object.keys,
// JSON, inspect, `in`) and not copied into nested scopes.

/**
 * The adapter's request object (a FastifyRequest, an IncomingMessage …).
 * Once a request whose events the package runs (node:http based adapters,
 * Fastify with scopeRawEvents) and its response have both closed,
 * `{ id, log, detached: true }` copied from it, and kResponse and kReply are
 * cleared: work the request left running keeps its id and logger without
 * keeping the request alive.
 */
export const kRequest = Symbol.for('request-locals.request')
/** The node:http response the scope serves: its 'close' ends the scope. */
export const kResponse = Symbol.for('request-locals.response')
/** The framework's reply object when it is not the node:http response (Fastify's reply). */
export const kReply = Symbol.for('request-locals.reply')
/** The request id (a string): set when the scope opens, or made on first read. */
export const kRequestId = Symbol.for('request-locals.request-id')
/** The trace `{ traceId, flags }` of a valid incoming W3C traceparent header. */
export const kTrace = Symbol.for('request-locals.trace')
/** The fields added by addLogBindings() (a frozen-by-convention object), replaced, never mutated, on each add. */
export const kLogBindings = Symbol.for('request-locals.log-bindings')
/**
 * The logger the package made for the request from the request's `log`: the
 * only request logger it ever changes (setBindings, level).
 */
export const kRequestLog = Symbol.for('request-locals.request-log')
/**
 * How the scope ends, registered by its first resource: the ending protocol,
 * version 1, `{ protocol?: 1, ended, get(definition), end(outcome),
 * endNow(outcome) }` (see lifecycle/scope-end.ts, ScopeEnding).
 */
export const kEnding = Symbol.for('request-locals.ending')
/** The error the scope failed with, when an adapter saw one. */
export const kFailure = Symbol.for('request-locals.failure')

// State on objects other than the store.

/**
 * On a node:http request: the store its and its response's events run in.
 * Shared, so that a second copy's middleware on the same app finds the scope
 * the first opened instead of opening a second, and the events run in the
 * store the handlers write to.
 */
export const kStore = Symbol.for('request-locals.request-store')
/** On a request or response: an `emit` another library had set on the emitter itself. */
export const kEmit = Symbol.for('request-locals.delegate-emit')
/** On Express's own request and response objects: their emit runs each request's events in its store. */
export const kScopedEmit = Symbol.for('request-locals.scoped-emit')
/** On Fastify's raw request: the id decided in genReqId, picked up by onRequest. */
export const kIncomingRequestId = Symbol.for('request-locals.incoming-request-id')
/** On a bound emitter: its original emit, so binding again (through any copy) replaces the binding. */
export const kUnboundEmit = Symbol.for('request-locals.unbound-emit')
/** On an async resource, in debug mode: where it was created. */
export const kOrigin = Symbol.for('request-locals.async-origin')
/** On a response with endResourcesBeforeResponse: its held writes until the resources have ended. */
export const kHold = Symbol.for('request-locals.response-hold')
