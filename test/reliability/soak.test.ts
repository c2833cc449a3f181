import t from 'tap'
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'

// The isolation soak (soak/README.md) in a short configuration, on the Node
// running the tests: 15,000 requests against Fastify and 15,000 against
// Express at the same time, each request with a user of its own, random
// delays, chunked bodies and 2 % client aborts (about 20 s on a quiet 2-core
// machine, 60 s when it is busy). `npm run soak` runs 1,000,000 per server.
// It runs the built package (dist/), which the pretest script builds.
const root = resolve(import.meta.dirname, '../..')
const requests = 15000
// Above .taprc's 120 s: on a machine busy with other test files it can take longer.
t.setTimeout(300000)

interface Side { mismatches: number, losses: number, errors: number }
interface Result {
  server: string
  client: Side & { sent: number, verified: number, aborted: Record<string, number> }
  counters: Side & { scopes: number, created: number, disposed: number, reads: number }
  heap: { delta: number }
  failures: string[]
}

function soak (): Promise<{ code: number, results: Result[], stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['soak/run.mjs', '--server', 'both', '--requests', String(requests), '--warmup', '3000', '--json'],
      { cwd: root, maxBuffer: 2 ** 24 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, results: stdout.trim() === '' ? [] : JSON.parse(stdout) as Result[], stderr })
      })
  })
}

t.test('under load, every request reads back its own user, and every scope ends', async (t) => {
  const { code, results, stderr } = await soak()
  t.equal(code, 0, 'the soak passes', { stderr })
  t.same(results.map((r) => r.server), ['fastify', 'express'])
  for (const r of results) {
    t.test(r.server, async (t) => {
      t.equal(r.client.sent, requests)
      t.equal(r.client.mismatches, 0, 'no answer holds another request\'s user')
      t.equal(r.counters.mismatches, 0, 'no read in the server returned another request\'s user')
      t.equal(r.client.losses, 0, 'no answer holds a read made outside a scope')
      t.equal(r.counters.losses, 0, 'no read in the server was made outside a scope')
      t.equal(r.client.errors + r.counters.errors, 0, 'no errors')
      t.ok(r.counters.reads > 5 * r.client.verified, 'the server checked every read')
      t.ok(Object.values(r.client.aborted).every((n) => n > 0), 'requests were aborted mid-body, while waiting and mid-response')
      t.equal(r.counters.created, r.counters.scopes, 'one resource per scope')
      t.equal(r.counters.disposed, r.counters.created, 'every resource disposed')
      t.same(r.failures, [])
    })
  }
})
