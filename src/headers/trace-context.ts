import { randomBytes } from 'node:crypto'
import type { TraceContext } from '../core/scope-state.js'

// W3C Trace Context: version-traceid-parentid-flags, lower-case hex (55
// characters for version 00). Later versions may append fields after a
// dash, which are not read; version ff is invalid. One test and fixed slices:
// capture groups cost twice as much, on every traced request.
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/
const VERSION_00_LENGTH = 55
const ZERO_TRACE_ID = '0'.repeat(32)
const ZERO_PARENT_ID = '0'.repeat(16)

const TRACE_ID = /^[0-9a-f]{32}$/
const TRACE_FLAGS = /^[0-9a-f]{2}$/

/**
 * Whether `value` is a W3C trace id: 32 lower-case hex digits, not all zero.
 *
 * @example
 * isTraceId('4bf92f3577b34da6a3ce929d0e0e4736') // true
 */
export function isTraceId (value: string): boolean {
  return TRACE_ID.test(value) && value !== ZERO_TRACE_ID
}

/**
 * Whether `value` is W3C trace flags: 2 lower-case hex digits.
 *
 * @example
 * isTraceFlags('01') // true
 */
export function isTraceFlags (value: string): boolean {
  return TRACE_FLAGS.test(value)
}

/**
 * The trace id and flags of a W3C `traceparent` value, or undefined when it
 * is not a valid one (wrong shape, upper-case hex, version ff, all-zero ids,
 * version 00 with extra fields).
 *
 * @example
 * parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
 * // { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '01' }
 */
export function parseTraceparent (value: string): TraceContext | undefined {
  if (!TRACEPARENT.test(value)) return undefined
  const version = value.slice(0, 2)
  if (version === 'ff' || (version === '00' && value.length !== VERSION_00_LENGTH)) return undefined
  const traceId = value.slice(3, 35)
  if (traceId === ZERO_TRACE_ID || value.slice(36, 52) === ZERO_PARENT_ID) return undefined
  return { traceId, flags: value.slice(53, 55) }
}

/**
 * A `traceparent` for one outgoing call that continues `trace`: version 00
 * (the one this code speaks, as the spec asks when forwarding a later
 * version), the same trace id and flags, and a new random span id as the
 * parent, so the callee's work hangs under this call.
 *
 * @example
 * outgoingTraceparent({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '01' })
 * // '00-4bf92f3577b34da6a3ce929d0e0e4736-<16 random hex digits>-01'
 */
export function outgoingTraceparent (trace: TraceContext): string {
  // An all-zero span id (invalid) comes out once in 2^64 calls: not checked.
  return `00-${trace.traceId}-${randomBytes(8).toString('hex')}-${trace.flags}`
}

/**
 * A new trace for a request that continues none: a random trace id, marked
 * sampled (so tracers downstream that follow their parent's decision record it).
 *
 * @example
 * startTrace() // { traceId: '<32 random hex digits>', flags: '01' }
 */
export function startTrace (): TraceContext {
  // An all-zero trace id (invalid) comes out once in 2^128 requests: not checked.
  return { traceId: randomBytes(16).toString('hex'), flags: '01' }
}
