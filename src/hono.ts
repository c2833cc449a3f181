import type { Context, HonoRequest, MiddlewareHandler, Next } from 'hono'
import { compileRequestScopeOptions, type RequestScopeOptions } from './adapters/scope-options.js'
import { attachIncoming, resolveRequestId } from './headers/request-id.js'
import { endScope, endingOf, outcomeSoFar, type ScopeOutcome } from './lifecycle/scope-end.js'
import { requestIdOf } from './core/scope-state.js'
import { sharedStorage, type Store } from './core/storage.js'
import { endRequestResources, type RequestLocals } from './index.js'

// Hono runs on the Fetch API: a request comes in as a `Request`, the
// middleware chain and handler produce a `Response`, and the server (Bun.serve,
// Deno.serve, @hono/node-server) writes it. There are no request or response
// events to scope, so this adapter only opens a scope around the rest of the
// chain, and ends it when the response is produced — or, for a scope holding
// resources, when the server has read the response's body to its end (a
// stream) or cancelled it (the client went away). Hono itself is imported for
// its types only: this module loads on any runtime without it.

/**
 * Options of {@link honoRequestLocals}: the options every adapter takes
 * ({@link RequestScopeOptions}). `defaults` and `requestId.generate` are given
 * Hono's request, `c.req` (its `raw` is the Fetch `Request`), the same object
 * on every runtime Hono serves from.
 *
 * @example
 * const options: HonoRequestLocalsOptions = {
 *   defaults: (req) => ({ tenant: req.header('x-tenant') ?? 'public' }),
 *   requestId: { echoHeader: true, generate: (req) => `${req.method}-${crypto.randomUUID()}` }
 * }
 */
export interface HonoRequestLocalsOptions extends RequestScopeOptions<HonoRequest> {}

/**
 * The Hono variables the middleware sets: `c.var.locals` is the request's
 * store, the very object `requestLocal` reads and writes. Other `c.set` keys
 * are Hono's own and are not copied into the store.
 *
 * @example
 * const app = new Hono<{ Variables: HonoRequestLocalsVariables }>()
 * app.get('/', (c) => c.json({ tenant: c.var.locals.tenant }))
 */
export interface HonoRequestLocalsVariables {
  locals: RequestLocals
}

/** The environment {@link honoRequestLocals} declares, for `new Hono<…>()` and typed middleware. */
export interface HonoRequestLocalsEnv {
  Variables: HonoRequestLocalsVariables
}

const aborted: ScopeOutcome = Object.freeze({ ok: false, status: 'aborted' })
const failedStatus: ScopeOutcome = Object.freeze({ ok: false, status: 'failed' })
// Deno.serve's request signal tells nothing before the response is out (a
// client gone mid-handler still reads as not aborted), and reading it makes
// Deno print a warning about its legacy abort-on-success to the user. There
// the adapter learns that a client left from the body's cancellation alone.
const signalTellsAborts = !('Deno' in globalThis)

/**
 * Hono middleware giving each request its own scope: `requestLocal` works in
 * every middleware registered after it, in the handler, in Hono's error
 * handler (`app.onError`), and in everything they await or schedule, on
 * `@hono/node-server`, `Bun.serve` and `Deno.serve` alike. Resources made
 * with `defineRequestResource` are released exactly once: when the response
 * is produced, or, for a response with a body, when the server has read that
 * body to its end (`'completed'`) or cancelled it (`'aborted'`).
 *
 * @example
 * import { Hono } from 'hono'
 * import { honoRequestLocals } from 'request-locals/hono'
 * import { requestLocal } from 'request-locals'
 *
 * const app = new Hono()
 * app.use(honoRequestLocals({ defaults: { tenant: 'public' } }))
 * app.get('/', (c) => c.text(`hello from ${requestLocal.tenant}`))
 */
export function honoRequestLocals (options: HonoRequestLocalsOptions = {}): MiddlewareHandler<HonoRequestLocalsEnv> {
  const policy = compileRequestScopeOptions<HonoRequest>(options, 'honoRequestLocals(options)')
  const { makeStore, requestId, endResourcesBeforeResponse } = policy
  const storage = sharedStorage()

  async function runChainInScope (c: Context<HonoRequestLocalsEnv>, next: Next, store: Store): Promise<void> {
    await next()
    if (endResourcesBeforeResponse) {
      await endResourcesNow(c, store)
      return
    }
    const body = c.res.body
    // A scope with resources and a body to send ends once the body is sent:
    // a streamed body may still be using them, and a client that went away
    // meanwhile is known by then (Deno aborts the request's signal only after
    // the body read failed). Otherwise it ends now, and a resource asked for
    // later (from a stream started by the handler) is refused rather than
    // never released.
    if (body !== null && endingOf(store) !== undefined) {
      c.res = new Response(endWhenSent(body, c, store), c.res)
      return
    }
    void endScope(store, outcomeOf(c, store))
  }

  return async function openRequestScope (c, next) {
    // Registered twice (on the app and on a route): one request, one store.
    if (c.get('locals') !== undefined) return next()
    const store = makeStore(c.req)
    if (requestId !== undefined) {
      const incoming = resolveRequestId(requestId, rawHeadersOf(c.req.raw.headers), c.req)
      attachIncoming(store, incoming.id, incoming)
    }
    c.set('locals', store as RequestLocals)
    await storage.run(store, runChainInScope, c, next, store)
    // After the chain, so that it also reaches a Response the handler built
    // itself (c.header copies one whose headers are immutable).
    if (requestId?.echoHeader !== undefined) c.header(requestId.echoHeader, requestIdOf(store))
  }
}

// Hono turns an error thrown by a handler into `c.error` and its error
// handler's response, so the chain resolves either way.
function outcomeOf (c: Context, store: Store): ScopeOutcome {
  if (clientLeft(c)) return aborted
  if (c.error !== undefined) return outcomeSoFar(store, c.error)
  if (c.res.status >= 500) return failedStatus
  return outcomeSoFar(store)
}

function clientLeft (c: Context): boolean {
  return signalTellsAborts && c.req.raw.signal.aborted
}

// endResourcesBeforeResponse: commit or roll back before the response leaves;
// a failed end replaces the response with a 500, so the client never sees a
// success whose commit failed. Runs in the scope, as endRequestResources must.
async function endResourcesNow (c: Context, store: Store): Promise<void> {
  if (clientLeft(c)) {
    await endScope(store, aborted)
    return
  }
  try {
    await endRequestResources(c.error ?? (c.res.status >= 500 ? failedResponse(c.res.status) : undefined))
  } catch (error) {
    c.error = error as Error
    c.res = new Response('Internal Server Error', { status: 500 })
  }
}

function failedResponse (status: number): Error {
  return new Error(`the response's status was ${status}`)
}

// The response's body, passed through chunk by chunk, ending the scope when
// the server has read its last chunk or cancelled it.
function endWhenSent (body: ReadableStream<Uint8Array>, c: Context, store: Store): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  return new ReadableStream<Uint8Array>({
    async pull (controller) {
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (error) {
        controller.error(error)
        void endScope(store, outcomeSoFar(store, error))
        return
      }
      if (chunk.done) {
        controller.close()
        void endScope(store, outcomeOf(c, store))
      } else {
        controller.enqueue(chunk.value)
      }
    },
    cancel (reason) {
      void endScope(store, aborted)
      return reader.cancel(reason)
    }
  })
}

// The flat name/value list resolveRequestId scans, from Fetch headers (which
// lower-case names and join repeated ones with ", ").
function rawHeadersOf (headers: Headers): string[] {
  const raw: string[] = []
  headers.forEach((value, name) => { raw.push(name, value) })
  return raw
}

export type { RequestIdOptions, UpstreamOptions } from './headers/request-id.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
