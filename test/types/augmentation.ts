// Compiled by `npm run typecheck` (tsc), not run: each @ts-expect-error
// below must be an error, or tsc fails the test run.
import { EventEmitter } from 'node:events'
import { bindEmitter, bindLocals, createRequestLocals, requestLocal, runWithLocals, setLocalsDebug, snapshotLocals, tryGetLocals, defineRequestResource, endRequestResources, type LocalsSnapshot, type LocalsValues, type RequestLocals, type SnapshotIdentity, type SnapshotOptions, type RequestResource, type ScopeOutcome, type ScopeStatus } from 'request-locals'
import { withLocals } from 'request-locals/testing'
import fastifyRequestLocals from 'request-locals/fastify'
import Fastify from 'fastify'

interface User { id: string, roles: string[] }

declare module 'request-locals' {
  interface RequestLocals {
    user?: User
    tenant: string
  }
}

const user: User | undefined = requestLocal.user
const tenant: string = requestLocal.tenant
requestLocal.tenant = 'acme'
requestLocal.user = { id: 'u1', roles: [] }

// @ts-expect-error unknown keys are compile errors
void requestLocal.nope
// @ts-expect-error writing an unknown key is a compile error
requestLocal.nope = 1
// @ts-expect-error a wrong value type is a compile error
requestLocal.tenant = 42
// @ts-expect-error the user has a shape
requestLocal.user = { id: 1 }

runWithLocals({ tenant: 'jobs' }, () => requestLocal.tenant)
const n: number = runWithLocals({}, () => 1)
// @ts-expect-error runWithLocals checks value types
runWithLocals({ tenant: 1 }, () => {})
// @ts-expect-error runWithLocals refuses unknown keys
runWithLocals({ unknownKey: true }, () => {})

const maybe: string | undefined = tryGetLocals()?.tenant
const bound: (a: number) => string = bindLocals((a: number) => String(a))

// request-locals/testing: the locals of a test are typed like runWithLocals'.
const tapBody: (t: { equal: (a: unknown, b: unknown) => void }) => Promise<void> = withLocals({ tenant: 't', user: { id: 'u', roles: [] } }, async (t: { equal: (a: unknown, b: unknown) => void }) => {
  t.equal(requestLocal.tenant, 't')
})
const doneBody: (t: unknown, done: () => void) => void = withLocals(() => ({ tenant: 'fresh' }), (_t: unknown, done: () => void) => done())
// @ts-expect-error withLocals refuses unknown keys
withLocals({ nope: 1 }, () => {})
// @ts-expect-error withLocals checks value types
withLocals({ tenant: 42 }, () => {})
// @ts-expect-error the user has a shape in tests too
withLocals({ user: { id: 1, roles: [] } }, () => {})
// @ts-expect-error a values function is checked too
withLocals(() => ({ tenant: 42 }), () => {})
// @ts-expect-error and so are the keys it returns
withLocals(() => ({ tenant: 't', nope: 1 }), () => {})
// @ts-expect-error the body must be a function
withLocals({ tenant: 't' }, 'body')

// Snapshots carry only the chosen keys, typed, and reopen with runWithLocals.
const snapshot: LocalsSnapshot<RequestLocals, 'user' | 'tenant'> = snapshotLocals(['user', 'tenant'])
const snapshotUser: User | undefined = snapshot.user
runWithLocals(snapshot, () => {})
// @ts-expect-error only declared keys can be snapshotted
snapshotLocals(['nope'])
// @ts-expect-error keys left out are not in the snapshot's type
void snapshotLocals(['tenant']).user
// The request's identity travels as plain data, and reopens with runWithLocals.
const identity: SnapshotIdentity = snapshot.$requestLocals
const snapshotId: string | undefined = identity.requestId
const snapshotFlags: string | undefined = identity.traceFlags
runWithLocals(snapshotLocals([]), () => {})
runWithLocals(JSON.parse('{}') as LocalsSnapshot<RequestLocals, 'tenant'>, () => {})
runWithLocals({ tenant: 't', $requestLocals: { requestId: 'abc', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' } }, () => {})
const values: LocalsValues<RequestLocals> = { user: { id: 'u', roles: [] } }
// @ts-expect-error the identity's fields are strings
runWithLocals({ $requestLocals: { requestId: 1 } }, () => {})
// @ts-expect-error $requestLocals is not a local
snapshotLocals(['$requestLocals'])
const options: SnapshotOptions = { transport: 'structured-clone' }
snapshotLocals(['tenant'], options)
snapshotLocals(['tenant'], { transport: 'json' })
// @ts-expect-error the transports are 'json' and 'structured-clone'
snapshotLocals(['tenant'], { transport: 'msgpack' })

const emitter: EventEmitter = bindEmitter(new EventEmitter())
// @ts-expect-error bindEmitter takes an emitter
bindEmitter({})
setLocalsDebug(true)
// @ts-expect-error debug mode is switched with a boolean
setLocalsDebug('on')

const app = Fastify()
await app.register(fastifyRequestLocals, { defaults: (request) => ({ tenant: request.headers.host ?? 'none' }) })
await app.register(fastifyRequestLocals, { defaults: { tenant: 'public' } })
// @ts-expect-error defaults are typed by RequestLocals
await app.register(fastifyRequestLocals, { defaults: { tenant: 3 } })
app.get('/', async (request) => {
  const fromRequest: string = request.locals.tenant
  return fromRequest
})

interface JobLocals { jobId: string }
const jobs = createRequestLocals<JobLocals>()
const jobId: string = jobs.requestLocal.jobId
// @ts-expect-error an isolated instance has only its own keys
void jobs.requestLocal.tenant

export { user, tenant, n, maybe, bound, jobId, tapBody, doneBody, snapshotUser, emitter, snapshotId, snapshotFlags, values }

// Per-request resources: the value type comes from create, sync or async.
interface Client { query: (sql: string) => Promise<void>, release: () => void }
declare function connect (): Promise<Client>
const transaction = defineRequestResource({
  name: 'transaction',
  create: connect,
  async dispose (client, outcome: ScopeOutcome) {
    await client.query(outcome.ok ? 'COMMIT' : 'ROLLBACK')
    const status: ScopeStatus = outcome.status
    void status
    client.release()
  }
})
const client: Promise<Client> = transaction.get()
void client
const counter: RequestResource<number> = defineRequestResource({ create: () => 1 })
void counter
// @ts-expect-error dispose receives the created value's type
defineRequestResource({ create: () => 1, dispose: (value: string) => { void value } })
// @ts-expect-error create is required
defineRequestResource({ dispose: () => {} })

// Ending resources early: a promise, with an optional error.
const ended: Promise<void> = endRequestResources()
void ended
void endRequestResources(new Error('x'))
void jobs.endRequestResources()
