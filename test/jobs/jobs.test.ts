import t from 'tap'
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { hasLocals, requestLocal, runWithLocals, tryGetLocals } from '../../src/index.js'
import { Barrier, deferred, portOf, send } from '../helpers/http.js'
import { HOP_COUNT, readUserAcrossHops } from '../helpers/hops.js'
import { jitter } from '../helpers/pools.js'
import '../helpers/locals.js'

// runWithLocals is how work that is not a request gets a scope: cron-style
// jobs, queue consumers, CLI scripts. scope.test.ts covers the basics; these
// tests cover the shapes such work takes.

t.test('cron-style: a scheduler started outside any scope runs overlapping jobs, each in its own scope', async (t) => {
  const JOBS = 10
  const barrier = new Barrier(JOBS)
  const results: Array<Promise<Array<string | undefined>>> = []
  const all = deferred()
  // The scheduler's timer belongs to no scope, like a cron library's.
  let tick = 0
  const timer = setInterval(() => {
    const id = `job-${++tick}`
    results.push(runWithLocals({ user: { id } }, async () => {
      await barrier.arrive() // every job in flight at once
      return readUserAcrossHops()
    }))
    if (tick === JOBS) { clearInterval(timer); all.resolve() }
  }, 1)
  await all.promise
  t.equal(hasLocals(), false, 'the scheduler itself never had a scope')
  const seen = await Promise.all(results)
  t.same(seen, seen.map((_, i) => Array(HOP_COUNT).fill(`job-${i + 1}`)), 'every hop of every job read its own id')
})

t.test('a failing job: its error propagates, handlers inside still see its scope, the others are unaffected', async (t) => {
  const logged: Array<string | undefined> = []
  const job = (id: string, fail: boolean): Promise<string> => runWithLocals({ user: { id } }, async () => {
    try {
      await jitter()
      if (fail) throw new Error(`${id} failed`)
      return `${id} done`
    } catch (err) {
      logged.push(requestLocal.user?.id) // a catch inside the job logs with the job's locals
      throw err
    }
  })
  const settled = await Promise.allSettled([job('a', false), job('b', true), job('c', false)])
  t.same(settled.map((s) => s.status === 'fulfilled' ? s.value : (s.reason as Error).message), ['a done', 'b failed', 'c done'])
  t.same(logged, ['b'])
  t.equal(tryGetLocals(), undefined, 'the caller, outside, sees no scope')

  const thrown = new Error('sync')
  t.throws(() => runWithLocals({ tenant: 'x' }, () => { throw thrown }), thrown)
  t.equal(hasLocals(), false, 'a synchronous throw ends the scope too')
  await t.rejects(runWithLocals({ tenant: 'x' }, async () => { void requestLocal.tenant; throw thrown }), thrown)
})

t.test('nesting: a job started from a request starts from a copy of it and can outlive it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals, { defaults: { tenant: 'acme' } })
  app.addHook('onRequest', async (request) => { requestLocal.user = { id: String(request.headers['x-user']) } })
  const jobs = new Map<string, { started: () => void, release: Promise<void>, seen: Promise<unknown> }>()
  app.post('/export', async () => {
    const entry = jobs.get(requestLocal.user!.id)!
    const started = new Promise<void>((resolve) => { entry.started = resolve })
    // Fire and forget: the job runs on after the response is sent.
    entry.seen = runWithLocals({ tenant: 'exports' }, async () => {
      const before = { user: requestLocal.user!.id, tenant: requestLocal.tenant }
      requestLocal.seen = 'job wrote this'
      entry.started()
      await entry.release
      const nested = await runWithLocals({ tags: ['inner'] }, async () => {
        await jitter()
        requestLocal.tenant = 'inner-only'
        return { ...requestLocal }
      })
      return { before, nested, after: { ...requestLocal } }
    })
    await started
    requestLocal.user = { id: 'changed by the request' }
    return { requestSeen: requestLocal.seen ?? null, tenant: requestLocal.tenant }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })

  const users = ['u1', 'u2', 'u3']
  const releases = users.map(() => deferred())
  users.forEach((user, i) => jobs.set(user, { started: () => {}, release: releases[i].promise, seen: Promise.resolve() }))
  const responses = await Promise.all(users.map((user) => send({ port: portOf(app.server), method: 'POST', path: '/export', headers: { 'x-user': user } })))
  t.same(responses.map((res) => res.json()), users.map(() => ({ requestSeen: null, tenant: 'acme' })), 'the job\'s writes did not reach the request')
  for (const release of releases.reverse()) release.resolve() // finish in the other order, after the responses
  const seen = await Promise.all(users.map((user) => jobs.get(user)!.seen))
  t.same(seen, users.map((user) => ({
    before: { user, tenant: 'exports' },
    nested: { user: { id: user }, tenant: 'inner-only', seen: 'job wrote this', tags: ['inner'] },
    after: { user: { id: user }, tenant: 'exports', seen: 'job wrote this' }
  })), 'each job kept a copy of its request, and the nested scope\'s writes stayed inside it')
})

t.test('a CLI script wraps main in runWithLocals; a failure exits non-zero with the error', async (t) => {
  const root = resolve(import.meta.dirname, '../..')
  const dir = t.testdir({
    node_modules: { 'request-locals': t.fixture('symlink', root) },
    'script.mjs': `
      import { hasLocals, requestLocal, runWithLocals } from 'request-locals'
      async function main (args) {
        await new Promise((resolve) => setTimeout(resolve, 1))
        if (args.includes('--fail')) throw new Error('import failed for ' + requestLocal.tenant)
        console.log('imported for', requestLocal.tenant, 'by', requestLocal.user.id)
      }
      runWithLocals({ tenant: process.env.TENANT, user: { id: 'cli' } }, () => main(process.argv.slice(2)))
        .then(() => console.log('scope after main:', hasLocals()))
        .catch((err) => { console.error(err.message); process.exitCode = 1 })
    `,
    'forgot.mjs': `
      import { requestLocal } from 'request-locals'
      console.log(requestLocal.tenant)
    `
  })
  const run = promisify(execFile)
  const env = { ...process.env, TENANT: 'acme' }
  const ok = await run(process.execPath, ['script.mjs'], { cwd: dir, env })
  t.equal(ok.stdout, 'imported for acme by cli\nscope after main: false\n')

  const failed = await run(process.execPath, ['script.mjs', '--fail'], { cwd: dir, env }).catch((err: { code: number, stderr: string }) => err)
  t.match(failed, { code: 1, stderr: 'import failed for acme\n' }, 'the job\'s error, with its locals, and exit code 1')

  const forgot = await run(process.execPath, ['forgot.mjs'], { cwd: dir }).catch((err: { code: number, stderr: string }) => err)
  t.match(forgot, { code: 1, stderr: /requestLocal.tenant was read outside a request scope[\s\S]*wrap background work in runWithLocals[\s\S]*code: 'ERR_REQUEST_LOCALS_NO_SCOPE'/ }, 'a script that forgot runWithLocals says how to fix it')
})
