import { createHook, executionAsyncResource, type AsyncHook } from 'node:async_hooks'
import { registered } from '../protocol/registered.js'
import { kDebug, kOrigin } from '../protocol/symbols.js'

// Debug mode answers the question a NO_SCOPE error raises in a callback:
// where did this code's async context come from? While it is on, an async
// hook notes on every async resource (promise, timer, socket …) the stack
// that created it. The error then names the resource the failing code runs
// in and where it was created: for a `.then` callback, where `.then` was
// called; for a timer, where it was set. That is where the scope was lost.
//
// Off (the default) nothing is installed: no hook, no check on the path that
// opens scopes or reads locals. Only the NO_SCOPE error path asks
// lostContextHint(), which returns '' at once.

interface Origin {
  type: string
  // A captured stack, which V8 formats only if a NO_SCOPE error reads it.
  site: { stack: string }
}

type Noted = object & { [kOrigin]?: Origin }

// Whether debug mode is on is shared by every installed copy of the package,
// so that a NO_SCOPE error thrown by a library's bundled copy also explains
// itself once the application turned debug mode on.
const shared = registered<{ enabled: boolean }>(kDebug, () => ({ enabled: false }))
let hook: AsyncHook | undefined

// Node's internal frames say nothing about the application, so they are
// dropped from the creation site.
const FRAMES_SHOWN = 5

function noteOrigin (_asyncId: number, type: string, _triggerAsyncId: number, resource: object): void {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = FRAMES_SHOWN + 10
  const site = {} as { stack: string }
  Error.captureStackTrace(site, noteOrigin) // starts below this hook
  Error.stackTraceLimit = limit
  ;(resource as Noted)[kOrigin] = { type, site }
}

/**
 * Turns debug mode on or off. While on, `ERR_REQUEST_LOCALS_NO_SCOPE` errors
 * also say which async resource (a timer, a socket …) the failing code runs
 * in and where that resource was created: the place where the scope was
 * lost. It slows every async operation down (it records a stack for each), so
 * use it in development and tests only; off, it costs nothing.
 *
 * @example
 * import { setLocalsDebug } from 'request-locals'
 *
 * if (process.env.NODE_ENV !== 'production') setLocalsDebug(true)
 */
export function setLocalsDebug (on: boolean): void {
  shared.enabled = on === true
  hook ??= createHook({ init: noteOrigin })
  if (shared.enabled) hook.enable()
  else hook.disable()
}

function creationSite (site: { stack: string }): string {
  const lines = site.stack.split('\n').slice(1)
  return lines
    .filter((line) => !line.includes('(node:') && !line.includes(' node:'))
    .slice(0, FRAMES_SHOWN)
    .join('\n')
}

/** The debug-mode addition to a NO_SCOPE message; '' when debug mode is off. */
export function lostContextHint (): string {
  if (!shared.enabled) return ''
  const origin = (executionAsyncResource() as Noted)[kOrigin]
  if (origin === undefined) {
    return ' [debug] This code runs in an async context created before debug mode was turned on, or by Node itself; ' +
      'no creation site is known. Turn debug mode on before the server, pool or queue is created.'
  }
  return ` [debug] This code runs in the async context of a ${origin.type} resource, created outside the scope at:\n` +
    `${creationSite(origin.site)}\n` +
    'The scope was lost there: wrap the callback handed over at that point in bindLocals(fn), ' +
    'or bind its emitter with bindEmitter(emitter), at the point where the request is still in scope.'
}
