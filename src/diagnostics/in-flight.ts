import { registered } from '../protocol/registered.js'
import { kInFlight } from '../protocol/symbols.js'

// How many requests have an open scope right now, kept by the adapters that
// run a request's own events in its scope (Express, node:http and node:http2,
// Fastify with scopeRawEvents): one increment when a request's scope opens,
// one decrement when the request emits 'close', which it does exactly once
// however it ends (a pipelined request cut while queued included; its
// response never closes). A counter, not a set, so nothing is kept per
// request. Fastify's default mode does not count: it has no per-request
// event it could count on without a listener per request, so its requests
// never claim to be in flight. It only feeds the NO_SCOPE message: code that
// finds no scope while requests are in flight most likely runs in a callback
// that lost its request's context.

// The count is kept under a registered key, so that every installed copy of
// the package counts the same requests.
interface InFlight { open: number }

const inFlight = registered<InFlight>(kInFlight, () => ({ open: 0 }))

export function requestOpened (): void {
  inFlight.open++
}

export function requestClosed (): void {
  if (inFlight.open > 0) inFlight.open--
}

/** The NO_SCOPE message's addition while requests are in flight; '' otherwise. */
export function inFlightHint (): string {
  if (inFlight.open === 0) return ''
  return ' Requests are in flight right now, so this code most likely runs in a callback that lost its request\'s context ' +
    '(handed to a pool, a queue or an emitter created outside the request): wrap the callback in bindLocals(fn), ' +
    'or the emitter in bindEmitter(emitter), where the request is still in scope; if it is a hook, register the ' +
    'plugin/middleware before it. setLocalsDebug(true) shows where the context was lost.'
}
