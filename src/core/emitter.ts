import { AsyncResource } from 'node:async_hooks'
import type { EventEmitter } from 'node:events'
import { describe, invalidArgumentError } from './errors.js'
import type { LocalsStorage, Store } from './storage.js'
import { kUnboundEmit } from '../protocol/symbols.js'

// An emitter's listeners run in whatever context calls emit(): for a socket
// that is the connection's, for a pool or queue its worker loop's. Binding
// replaces the emitter's own `emit` (an own property shadowing the
// prototype's), so every listener, added before or after, runs in the bound
// scope; `off`, `once` and `listeners()` keep working on the functions the
// application registered, which wrapping each listener would break.

type Emit = EventEmitter['emit']

// The emitter's original emit is kept, so that binding again replaces the
// binding instead of nesting inside it (the inner binding would win).
type Bindable = EventEmitter & { [kUnboundEmit]?: Emit }

function unboundEmit (emitter: Bindable): Emit {
  emitter[kUnboundEmit] ??= emitter.emit
  return emitter[kUnboundEmit]
}

/**
 * Makes every listener of `emitter` run in the scope current now, whoever
 * emits later (a socket's own events, a pool's or queue's worker loop). Like
 * `bindLocals`, it carries the whole async context, so other libraries'
 * context (tracing, loggers) travels too. Binding again moves the emitter to
 * the scope current then. Returns the emitter.
 *
 * @example
 * import { bindEmitter, requestLocal } from 'request-locals'
 *
 * const job = bindEmitter(queue.submit(payload)) // the queue emits from its worker loop
 * job.on('done', (result) => audit(requestLocal.user, result)) // still this request's user
 */
export function bindEmitter<E extends EventEmitter> (emitter: E): E {
  if (typeof emitter !== 'object' || emitter === null || typeof emitter.emit !== 'function' || typeof emitter.on !== 'function') {
    throw invalidArgumentError(`bindEmitter(emitter) expects an EventEmitter (an object with emit and on methods); found ${describe(emitter)}.`)
  }
  const emit = unboundEmit(emitter)
  // One AsyncResource run around each emit, rather than AsyncLocalStorage.bind:
  // bind() also defines properties on the function it returns, which cost
  // about 7 % of a server's CPU when every request binds an emitter (soak, Node 20).
  const context = new AsyncResource('request-locals.bindEmitter')
  emitter.emit = function emitInBoundContext (this: EventEmitter, ...args: Parameters<Emit>): boolean {
    return context.runInAsyncScope(emit, this, ...args)
  }
  return emitter
}

/**
 * Makes `emitter` emit inside `store`: the adapters' variant of bindEmitter,
 * for emitters a request hands over to a long-lived connection. It re-enters
 * only this storage's store and leaves the rest of the async context as the
 * emitter has it, so no other library's context is replaced.
 */
export function emitInStore (emitter: EventEmitter, storage: LocalsStorage, store: Store): void {
  const emit = unboundEmit(emitter)
  emitter.emit = function emitInRequestScope (this: EventEmitter, ...args: Parameters<Emit>): boolean {
    return storage.run(store, Reflect.apply, emit, this, args) as boolean
  }
}
