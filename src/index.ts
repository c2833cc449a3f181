import { buildInstance } from './api/instance.js'
import type { RequestLocals } from './core/request-locals.js'
import { sharedStorage } from './core/storage.js'
import type { LocalsSnapshot, LocalsValues, SnapshotOptions } from './jobs/snapshot.js'
import type { RequestResource, RequestResourceOptions } from './lifecycle/resources.js'
import type { LocalsProxy } from './core/proxy.js'

export type { RequestLocals } from './core/request-locals.js'
export { RequestLocalsError, type RequestLocalsErrorCode } from './core/errors.js'
export { createRequestLocals, type RequestLocalsInstance } from './api/instance.js'
export { requestId, traceId } from './headers/request-id.js'
export { bindEmitter } from './core/emitter.js'
export { setLocalsDebug } from './diagnostics/debug.js'
export type { LocalsSnapshot, LocalsValues, SnapshotIdentity, SnapshotOptions } from './jobs/snapshot.js'
export type { RequestResource, RequestResourceOptions } from './lifecycle/resources.js'
export type { ScopeOutcome, ScopeStatus } from './lifecycle/scope-end.js'
export type { LocalsProxy } from './core/proxy.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
export type { RequestIdOptions, UpstreamOptions } from './headers/request-id.js'
export type { InboundBaggageOptions } from './headers/baggage.js'

const shared = buildInstance<RequestLocals>(sharedStorage())

/**
 * The current scope's values, typed by {@link RequestLocals}. Reading or
 * writing a key outside a scope throws `ERR_REQUEST_LOCALS_NO_SCOPE`; probes
 * (`then`, symbols, `toJSON`, `in`, `Object.keys`, `util.inspect`) never throw.
 *
 * @example
 * import { requestLocal } from 'request-locals'
 *
 * export async function listNotes () {
 *   return db.notes.findMany({ where: { ownerId: requestLocal.user!.id } })
 * }
 */
export const requestLocal: LocalsProxy<RequestLocals> = shared.requestLocal

/**
 * Runs `fn` in a new scope holding `values`, for work outside a request
 * (jobs, scripts, tests). Inside an existing scope it starts from a copy of
 * the enclosing values and keeps its request id; writes never leak out.
 * Returns what `fn` returns. Given a snapshot (see `snapshotLocals`), the
 * scope also takes the snapshot's request id and trace id from
 * `values.$requestLocals`, which never becomes a local; one that
 * snapshotLocals could not have written (a forged id) throws
 * `ERR_REQUEST_LOCALS_INVALID_SNAPSHOT` before `fn` runs.
 *
 * @example
 * await runWithLocals({ tenant: 'nightly' }, () => rebuildIndexes())
 * // a queue worker: the job's logs carry the id of the request that queued it
 * new Worker('reports', (job) => runWithLocals(job.data.locals, () => buildReport(job.data)))
 */
export const runWithLocals: <R>(values: LocalsValues<RequestLocals>, fn: () => R) => R = shared.runWithLocals

/**
 * The current scope's store, or `undefined` outside any scope. Never throws:
 * use it where running outside a request is expected.
 *
 * @example
 * const tenant = tryGetLocals()?.tenant ?? 'public'
 */
export const tryGetLocals: () => RequestLocals | undefined = shared.tryGetLocals

/**
 * Whether the code runs inside a scope (a request, or `runWithLocals`).
 *
 * @example
 * if (!hasLocals()) return runWithLocals({ tenant: 'cli' }, main)
 */
export const hasLocals: () => boolean = shared.hasLocals

/**
 * Returns `fn` bound to the scope current now: wherever it is called later
 * (a pool's callback, an event listener, a queue's worker loop), it runs in
 * this scope. Called outside a scope, it binds "no scope".
 *
 * @example
 * pool.query(sql, bindLocals((err, rows) => {
 *   log(requestLocal.user, rows) // still this request's user
 * }))
 */
export const bindLocals: <F extends (...args: never[]) => unknown>(fn: F) => F = shared.bindLocals

/**
 * Copies the chosen keys of the current scope into a plain object (a deep
 * copy) plus the request's id and trace id under `$requestLocals`, to queue
 * as a job or post to a worker thread and reopen there with
 * `runWithLocals(snapshot, fn)`, whose logs then carry the same request id.
 * Keys that are not set are left out. By default the values must be JSON
 * data (plain objects, arrays, strings, finite numbers, booleans, null): a
 * Date, a Map, a BigInt, NaN, a class instance or a function throws
 * `ERR_REQUEST_LOCALS_NOT_CLONEABLE` naming the key and the path to the
 * value. `{ transport: 'structured-clone' }` accepts what `structuredClone`
 * copies, for worker threads.
 *
 * @example
 * // in the request
 * await queue.add('report', { reportId, locals: snapshotLocals(['user', 'tenant']) })
 * // in the worker process
 * new Worker('reports', (job) => runWithLocals(job.data.locals, () => buildReport(job.data.reportId)))
 */
export const snapshotLocals: <K extends keyof RequestLocals & string>(keys: readonly K[], options?: SnapshotOptions) => LocalsSnapshot<RequestLocals, K> = shared.snapshotLocals

/**
 * Defines a per-request resource (a database connection, a transaction, a
 * client): made by `create` on the first `get()` in a scope, shared by the
 * rest of that scope, and disposed exactly once when the scope ends (the
 * response closes, or the runWithLocals function settles), with an outcome
 * that tells success from failure. Several resources are disposed in reverse
 * order of creation.
 *
 * @example
 * export const transaction = defineRequestResource({
 *   name: 'transaction',
 *   async create () {
 *     const client = await pool.connect()
 *     await client.query('BEGIN')
 *     return client
 *   },
 *   async dispose (client, outcome) {
 *     try { await client.query(outcome.ok ? 'COMMIT' : 'ROLLBACK') } finally { client.release() }
 *   }
 * })
 *
 * app.post('/notes', async (request) => {
 *   const tx = await transaction.get()
 *   await tx.query('INSERT INTO notes (body) VALUES ($1)', [request.body])
 *   return { ok: true }
 * })
 */
export const defineRequestResource: <T>(options: RequestResourceOptions<T>) => RequestResource<T> = shared.defineRequestResource

/**
 * Disposes the current scope's resources now instead of when the response
 * closes: for a transaction that must be committed before the client sees the
 * response (so that a failed COMMIT becomes an error response, and the
 * client's next request reads its own writes). The outcome is `'failed'` with
 * `error` when one is given or the request already failed (Fastify's onError),
 * `'completed'` otherwise. Rejects with `ERR_REQUEST_LOCALS_DISPOSE_FAILED`
 * when a dispose failed (all are still attempted), and with
 * `ERR_REQUEST_LOCALS_NO_SCOPE` outside a scope. Afterwards `get()` in this
 * scope rejects with `ERR_REQUEST_LOCALS_SCOPE_ENDED`.
 *
 * @example
 * // Fastify: commit (or roll back) before the response is written
 * app.addHook('onSend', async () => { await endRequestResources() })
 */
export const endRequestResources: (error?: unknown) => Promise<void> = shared.endRequestResources
