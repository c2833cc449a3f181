import { randomUUID } from 'node:crypto'
import { isSpanContextValid, propagation, ROOT_CONTEXT, trace, type SpanContext, type TextMapGetter } from '@opentelemetry/api'
import { checkOptionsObject } from './core/options.js'
import { describe, optionsError } from './core/errors.js'

// The one module that loads @opentelemetry/api (an optional peer dependency):
// only applications that import `request-locals/opentelemetry` need it.

/**
 * Options of {@link otelLogMixin}.
 *
 * @example
 * otelLogMixin({ traceIdKey: 'traceId', spanIdKey: 'spanId' })
 */
export interface OtelLogMixinOptions {
  /** The field that carries the active span's trace id (default `trace_id`). */
  traceIdKey?: string
  /** The field that carries the active span's id (default `span_id`). */
  spanIdKey?: string
  /** The field that carries its trace flags, as two hex digits (default `trace_flags`). */
  traceFlagsKey?: string
}

function activeSpanContext (): SpanContext | undefined {
  const context = trace.getActiveSpan()?.spanContext()
  return context !== undefined && isSpanContextValid(context) ? context : undefined
}

/**
 * A pino `mixin` adding the active OpenTelemetry span's `trace_id`,
 * `span_id` and `trace_flags` (the OpenTelemetry log field names) to every
 * line written while a span is active; nothing otherwise. Combine it with
 * `logMixin` of `request-locals/pino` in one mixin to get both.
 *
 * @example
 * import pino from 'pino'
 * import { logMixin } from 'request-locals/pino'
 * import { otelLogMixin } from 'request-locals/opentelemetry'
 *
 * const locals = logMixin()
 * const spans = otelLogMixin()
 * export const root = pino({ mixin: () => ({ ...locals(), ...spans() }) })
 */
export function otelLogMixin (options: OtelLogMixinOptions = {}): () => Record<string, string> {
  const { traceIdKey = 'trace_id', spanIdKey = 'span_id', traceFlagsKey = 'trace_flags' } = checkOptionsObject<OtelLogMixinOptions>(options, {
    where: 'otelLogMixin(options)',
    known: ['traceIdKey', 'spanIdKey', 'traceFlagsKey'],
    example: "{ traceIdKey: 'traceId' }"
  })
  for (const [name, key] of [['traceIdKey', traceIdKey], ['spanIdKey', spanIdKey], ['traceFlagsKey', traceFlagsKey]] as const) {
    if (typeof key !== 'string' || key === '') throw optionsError(`otelLogMixin(options).${name} must be a non-empty string (a log field name); found ${describe(key)}.`)
  }
  return function activeSpanMixin () {
    const context = activeSpanContext()
    if (context === undefined) return {}
    return {
      [traceIdKey]: context.traceId,
      [spanIdKey]: context.spanId,
      [traceFlagsKey]: context.traceFlags.toString(16).padStart(2, '0')
    }
  }
}

// Reads trace headers from what the adapters pass to generate: a node:http
// request (`headers` a record) or a Fetch request (`headers` a Headers).
interface HeaderCarrier { headers?: unknown }

const requestHeaders: TextMapGetter<HeaderCarrier> = {
  keys (carrier) {
    const { headers } = carrier
    if (typeof (headers as Headers | undefined)?.keys === 'function') return [...(headers as Headers).keys()]
    return typeof headers === 'object' && headers !== null ? Object.keys(headers) : []
  },
  get (carrier, key) {
    const { headers } = carrier
    if (typeof (headers as Headers | undefined)?.get === 'function') return (headers as Headers).get(key) ?? undefined
    if (typeof headers !== 'object' || headers === null) return undefined
    const value: unknown = (headers as Record<string, unknown>)[key.toLowerCase()]
    return typeof value === 'string' || Array.isArray(value) ? value as string | string[] : undefined
  }
}

// Whether the request's own headers carry `traceId`, read with the
// application's propagator (the one OpenTelemetry's instrumentation
// continues traces with).
function sentWith (request: HeaderCarrier, traceId: string): boolean {
  try {
    return trace.getSpanContext(propagation.extract(ROOT_CONTEXT, request, requestHeaders))?.traceId === traceId
  } catch {
    // A propagator that throws on a hostile header: the trace may have come
    // from the client, so it is not used.
    return true
  }
}

/**
 * A request id generator for the `requestId.generate` option: the trace id
 * of the span active when the request arrives (the server span of
 * OpenTelemetry's HTTP instrumentation), when that trace began in this
 * service; otherwise a `crypto.randomUUID()`. Logs then carry one id that
 * finds both the request's lines and its trace.
 *
 * OpenTelemetry continues the trace of an incoming `traceparent` by default,
 * so on an edge a client could choose the trace id, and two clients sending
 * the same header would share a request id. So when the request's own
 * headers carry the active trace (read with the application's propagator),
 * its id is not used: a request id is never chosen by a client. Behind a
 * trusted upstream, the caller's id arrives in `upstream.requestIdHeader`
 * and is continued before `generate` is asked. Called without a request, it
 * cannot tell, and returns the active trace id.
 *
 * @example
 * import { requestIdFromActiveSpan } from 'request-locals/opentelemetry'
 *
 * await app.register(fastifyRequestLocals, { requestId: { generate: requestIdFromActiveSpan } })
 */
export function requestIdFromActiveSpan (req?: unknown): string {
  const active = activeSpanContext()
  if (active === undefined) return randomUUID()
  if (typeof req === 'object' && req !== null && sentWith(req, active.traceId)) return randomUUID()
  return active.traceId
}
