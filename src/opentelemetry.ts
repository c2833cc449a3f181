import { randomUUID } from 'node:crypto'
import { isSpanContextValid, trace, type SpanContext } from '@opentelemetry/api'

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
  const { traceIdKey = 'trace_id', spanIdKey = 'span_id', traceFlagsKey = 'trace_flags' } = options
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

/**
 * A request id generator for the `requestId.generate` option: the trace id
 * of the span active when the request arrives (the server span of
 * OpenTelemetry's HTTP instrumentation), or a `crypto.randomUUID()` when no
 * span is active. Logs then carry one id that finds both the request's lines
 * and its trace.
 *
 * @example
 * import { requestIdFromActiveSpan } from 'request-locals/opentelemetry'
 *
 * await app.register(fastifyRequestLocals, { requestId: { generate: requestIdFromActiveSpan } })
 */
export function requestIdFromActiveSpan (): string {
  return activeSpanContext()?.traceId ?? randomUUID()
}
