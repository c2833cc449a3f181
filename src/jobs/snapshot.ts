import { checkOptionsObject } from '../core/options.js'
import { describe, describeHiddenString, invalidArgumentError, invalidSnapshotError, noScopeCallError, notCloneableError } from '../core/errors.js'
import { copyJsonData } from './json-data.js'
import { validateRequestId } from '../headers/request-id.js'
import { requestIdOf, traceOf, type TraceContext } from '../core/scope-state.js'
import { SNAPSHOT_KEY } from '../core/reserved-keys.js'
import { isTraceFlags, isTraceId } from '../headers/trace-context.js'
import type { LocalsStorage, Store } from '../core/storage.js'

// A snapshot leaves the process (a worker thread, a job queue), where the
// store's symbol keys do not go. So the request's identity travels as plain
// data under one reserved key, `$requestLocals`, which no local can use:
// runWithLocals(snapshot, fn) reopens it as the scope's request id, and it
// never becomes a local. One key rather than an envelope keeps
// runWithLocals(snapshot, fn) the one way to reopen a snapshot.

/**
 * The request identity a snapshot carries under `$requestLocals`, and that
 * `runWithLocals(values, fn)` restores: `requestId()` and the pino helpers
 * then give the originating request's id.
 *
 * @example
 * runWithLocals({ tenant: 'acme', $requestLocals: { requestId: message.headers['x-request-id'] } }, handle)
 */
export interface SnapshotIdentity {
  /** The request id: 1–200 characters of `A-Z a-z 0-9 - _ . : @`. */
  readonly requestId?: string
  /** The W3C trace id (32 lower-case hex digits, not all zero), when the request had one. */
  readonly traceId?: string
  /**
   * The W3C trace flags (2 lower-case hex digits; `01` is sampled) carried on
   * with `traceId` to the calls the job makes; `00` when left out.
   */
  readonly traceFlags?: string
}

/**
 * What `snapshotLocals(keys)` returns: a plain object holding a deep copy of
 * the chosen keys that were set, plus the request's identity under
 * `$requestLocals`. JSON data by default, so it can be queued as a job, and
 * reopened as a scope with `runWithLocals(snapshot, fn)`.
 *
 * @example
 * const snapshot: LocalsSnapshot<RequestLocals, 'user' | 'tenant'> = snapshotLocals(['user', 'tenant'])
 */
export type LocalsSnapshot<T extends object, K extends keyof T> = { [P in K]?: T[P] } & { readonly $requestLocals: SnapshotIdentity }

/**
 * Options of `snapshotLocals(keys, options)`.
 *
 * @example
 * worker.postMessage({ task, locals: snapshotLocals(['since'], { transport: 'structured-clone' }) })
 */
export interface SnapshotOptions {
  /**
   * How the snapshot will travel. `'json'` (the default) accepts only JSON
   * data, so that a queue that stores JSON gives the worker exactly what the
   * request held. `'structured-clone'` accepts whatever `structuredClone`
   * copies (Dates, Maps, Sets, BigInts …), for `postMessage` to a worker thread.
   */
  transport?: 'json' | 'structured-clone'
}

/**
 * The values `runWithLocals` takes: locals, and optionally the identity a
 * snapshot carries under `$requestLocals`.
 *
 * @example
 * const values: LocalsValues<RequestLocals> = job.data.locals
 * await runWithLocals(values, () => buildReport(job.data.reportId))
 */
export type LocalsValues<T extends object> = Partial<T> & { readonly $requestLocals?: SnapshotIdentity }

/** What runWithLocals restores: the id, and the trace the job continues. */
export interface ReopenedIdentity {
  readonly requestId: string | undefined
  readonly trace: TraceContext | undefined
}

function transportOf (options: unknown): 'json' | 'structured-clone' {
  if (options === undefined) return 'json'
  const { transport = 'json' } = checkOptionsObject<SnapshotOptions>(options, {
    where: 'snapshotLocals(keys, options): options',
    known: ['transport'],
    example: "{ transport: 'structured-clone' }",
    code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT'
  })
  if (transport === 'json' || transport === 'structured-clone') return transport
  throw invalidArgumentError(`snapshotLocals(keys, options) expects options.transport to be 'json' or 'structured-clone'; found ${typeof transport === 'string' ? JSON.stringify(transport) : describe(transport)}.`)
}

export function createSnapshotLocals<T extends object> (storage: LocalsStorage): <K extends keyof T & string>(keys: readonly K[], options?: SnapshotOptions) => LocalsSnapshot<T, K> {
  return function snapshotLocals<K extends keyof T & string> (keys: readonly K[], options?: SnapshotOptions): LocalsSnapshot<T, K> {
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) {
      throw invalidArgumentError(`snapshotLocals(keys) expects an array of key names; found ${describe(keys)}. Pass for example ['user', 'tenant'].`)
    }
    const json = transportOf(options) === 'json'
    const store = storage.getStore()
    if (store === undefined) throw noScopeCallError('snapshotLocals(keys)', 'Call it from the request (or job) whose locals it should capture.')
    // An ordinary object, not a null-prototype store: it is meant to leave
    // this process's scopes (postMessage, JSON), where plain objects travel.
    const snapshot: Store = {}
    for (const key of keys) {
      if (!(key in store)) continue
      const value = store[key]
      if (json) {
        snapshot[key] = value === undefined ? undefined : copyJsonData(value, `requestLocal.${key}`)
        continue
      }
      try {
        snapshot[key] = structuredClone(value)
      } catch (cause) {
        throw notCloneableError(key, value, cause)
      }
    }
    snapshot[SNAPSHOT_KEY] = identityOf(store)
    return snapshot as LocalsSnapshot<T, K>
  }
}

function identityOf (store: Store): SnapshotIdentity {
  const requestId = requestIdOf(store)
  const trace = traceOf(store)
  // An id that is not a safe one came from the framework (Fastify's
  // requestIdHeader, a custom genReqId), possibly from a client's header. It
  // is left out rather than thrown on: the request must still succeed, and
  // the worker's scope gets a fresh id instead of a forged one.
  const identity: { requestId?: string, traceId?: string, traceFlags?: string } = validateRequestId(requestId) === undefined ? { requestId } : {}
  if (trace !== undefined) {
    identity.traceId = trace.traceId
    identity.traceFlags = trace.flags
  }
  return identity
}

function describeId (value: unknown): string {
  if (typeof value !== 'string') return describe(value)
  const reason = validateRequestId(value)
  return reason === 'empty' ? 'an empty string' : describeHiddenString(value, `${reason === 'too-long' ? 'too long' : 'with characters outside that set'}; not shown, as it may carry forged log lines`)
}

/**
 * The identity `values.$requestLocals` asks `runWithLocals` to restore, or
 * undefined when there is none. It may come from a queue anyone can write
 * to, so it is checked the way an incoming request id header is, and refused
 * (never shown, never replaced silently) when snapshotLocals() could not
 * have written it.
 */
export function reopenedIdentity (values: Store): ReopenedIdentity | undefined {
  const given = Object.hasOwn(values, SNAPSHOT_KEY) ? values[SNAPSHOT_KEY] : undefined
  if (given === undefined) return undefined
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw invalidSnapshotError(SNAPSHOT_KEY, 'an object { requestId, traceId }', describe(given))
  }
  const { requestId, traceId, traceFlags } = given as Record<string, unknown>
  if (requestId !== undefined && (typeof requestId !== 'string' || validateRequestId(requestId) !== undefined)) {
    throw invalidSnapshotError(`${SNAPSHOT_KEY}.requestId`, 'a request id of 1–200 characters of A-Z a-z 0-9 - _ . : @', describeId(requestId))
  }
  if (traceId !== undefined && (typeof traceId !== 'string' || !isTraceId(traceId))) {
    throw invalidSnapshotError(`${SNAPSHOT_KEY}.traceId`, 'a W3C trace id of 32 lower-case hex digits, not all zero', typeof traceId === 'string' ? describeHiddenString(traceId, 'not shown') : describe(traceId))
  }
  if (traceFlags !== undefined && (typeof traceFlags !== 'string' || !isTraceFlags(traceFlags))) {
    throw invalidSnapshotError(`${SNAPSHOT_KEY}.traceFlags`, 'W3C trace flags of 2 lower-case hex digits', typeof traceFlags === 'string' ? describeHiddenString(traceFlags, 'not shown') : describe(traceFlags))
  }
  const trace = traceId === undefined ? undefined : { traceId: traceId as string, flags: (traceFlags as string | undefined) ?? '00' }
  return { requestId: requestId as string | undefined, trace }
}
