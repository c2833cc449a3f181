// How many requests have an open scope right now, kept by the node:http based
// adapters (Fastify, Express, node:http): one increment when a request's
// scope opens, one decrement when its response emits 'close'. A counter, not
// a set, so nothing is kept per request. It only feeds the NO_SCOPE message:
// code that finds no scope while requests are in flight most likely runs in a
// callback that lost its request's context.

let open = 0

export function requestOpened (): void {
  open++
}

export function requestClosed (): void {
  if (open > 0) open--
}

/** The NO_SCOPE message's addition while requests are in flight; '' otherwise. */
export function inFlightHint (): string {
  if (open === 0) return ''
  return ' Requests are in flight right now, so this code most likely runs in a callback that lost its request\'s context ' +
    '(handed to a pool, a queue or an emitter created outside the request): wrap the callback in bindLocals(fn), ' +
    'or the emitter in bindEmitter(emitter), where the request is still in scope; if it is a hook, register the ' +
    'plugin/middleware before it. setLocalsDebug(true) shows where the context was lost.'
}
