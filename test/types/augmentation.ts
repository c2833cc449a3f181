// Compiled by `npm run typecheck` (tsc), not run: each @ts-expect-error
// below must be an error, or tsc fails the test run.
import { bindLocals, createRequestLocals, defineRequestResource, requestLocal, runWithLocals, tryGetLocals, type RequestResource, type ScopeOutcome, type ScopeStatus } from 'request-locals'
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

export { user, tenant, n, maybe, bound, jobId }

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
