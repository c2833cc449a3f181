// Every symbol the package keys its state with, in one place. Registered
// symbols (Symbol.for) name state that another installed copy of the package
// must read too: the storage, and what a scope keeps besides its values.
// Unregistered ones name state only the copy that wrote it ever reads.

/** The process-wide storage, on globalThis. */
export const kSharedStorage = Symbol.for('request-locals')

// Per-scope state, on the store. Invisible through the proxy (Object.keys,
// JSON, inspect, `in`) and not copied into nested scopes.

/** The adapter's request object (a FastifyRequest, an IncomingMessage …). */
export const kRequest = Symbol.for('request-locals.request')
/** The node:http response the scope serves: its 'close' ends the scope. */
export const kResponse = Symbol.for('request-locals.response')
/** The request id: set when the scope opens, or made on first read. */
export const kRequestId = Symbol.for('request-locals.request-id')
/** The trace (id and flags) of a valid incoming W3C traceparent header. */
export const kTrace = Symbol.for('request-locals.trace')
/** The fields added by addLogBindings(), replaced (never mutated) on each add. */
export const kLogBindings = Symbol.for('request-locals.log-bindings')
/** How the scope ends: registered by its first resource. */
export const kEnding = Symbol.for('request-locals.ending')
/** The error the scope failed with, when an adapter saw one. */
export const kFailure = Symbol.for('request-locals.failure')

// State on objects other than the store.

/** On a node:http request: the store its and its response's events run in. */
export const kStore = Symbol('request-locals.store')
/** On a request or response: an `emit` another library had set on the emitter itself. */
export const kEmit = Symbol('request-locals.emit')
/** On Express's own request and response objects: their emit runs each request's events in its store. */
export const kScopedEmit = Symbol('request-locals.scoped-emit')
/** On Fastify's raw request: the id decided in genReqId, picked up by onRequest. */
export const kIncomingRequestId = Symbol('request-locals.incoming-request-id')
/** On a bound emitter: its original emit, so binding again replaces the binding. */
export const kUnboundEmit = Symbol('request-locals.unboundEmit')
/** On an async resource, in debug mode: where it was created. */
export const kOrigin = Symbol('request-locals.origin')
