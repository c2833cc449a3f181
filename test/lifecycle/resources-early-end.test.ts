import t from 'tap'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { defineRequestResource, endRequestResources, runWithLocals, type ScopeOutcome } from '../../src/index.js'
import { portOf, send } from '../helpers/http.js'
import '../helpers/locals.js'

// A transaction that records what happened to it, and whether the client
// could already have seen the response when it was committed.
function recorder (fail?: (outcome: ScopeOutcome) => boolean) {
  const events: string[] = []
  const tx = defineRequestResource({
    name: 'tx',
    create: () => { events.push('begin'); return {} },
    dispose: (_value, outcome) => {
      events.push(outcome.ok ? 'commit' : `rollback:${outcome.status}:${String((outcome.error as Error | undefined)?.message)}`)
      if (fail?.(outcome) === true) throw new Error('commit failed')
    }
  })
  return { events, tx }
}

t.test('endRequestResources disposes now, once, and later get() is refused', async (t) => {
  const { events, tx } = recorder()
  await runWithLocals({}, async () => {
    await tx.get()
    await endRequestResources()
    t.same(events, ['begin', 'commit'], 'committed before the scope ended')
    await t.rejects(tx.get(), { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
    await endRequestResources()
  })
  t.same(events, ['begin', 'commit'], 'the end of the scope did not dispose again')
})

t.test('with an error, or after a recorded failure, the outcome is failed', async (t) => {
  const { events, tx } = recorder()
  await runWithLocals({}, async () => {
    await tx.get()
    await endRequestResources(new Error('bad input'))
  })
  t.same(events, ['begin', 'rollback:failed:bad input'])
})

t.test('without any resource made it resolves, and get() is refused afterwards', async (t) => {
  const { events, tx } = recorder()
  await runWithLocals({}, async () => {
    await endRequestResources()
    await t.rejects(tx.get(), { code: 'ERR_REQUEST_LOCALS_SCOPE_ENDED' })
  })
  t.same(events, [])
})

t.test('outside a scope it rejects with ERR_REQUEST_LOCALS_NO_SCOPE', async (t) => {
  await t.rejects(endRequestResources(), { code: 'ERR_REQUEST_LOCALS_NO_SCOPE', message: /endRequestResources\(\) was called outside a request scope/ })
})

t.test('failing disposals reject to the caller (not logged again at the end of the scope)', async (t) => {
  const first = recorder(() => true)
  const second = recorder(() => true)
  const warnings: unknown[] = []
  // Only this library's warnings: the test runner's loader may emit its own
  // (Node 26 deprecates module.register()).
  const onWarning = (warning: Error & { code?: string }): void => { if (warning.code?.startsWith('ERR_REQUEST_LOCALS') === true) warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  await runWithLocals({}, async () => {
    await first.tx.get()
    await t.rejects(endRequestResources(), {
      code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED',
      message: /^Disposing the request resource "tx" failed: commit failed\. .*The response has not been sent yet/
    })
  })
  await runWithLocals({}, async () => {
    await first.tx.get()
    await second.tx.get()
    const rejection = await endRequestResources().catch((err: unknown) => err)
    t.match(rejection, { message: /resources "tx", "tx" failed: commit failed; commit failed/ })
    t.type((rejection as Error).cause, AggregateError)
  })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings, [], 'the caller had the failures; nothing was reported twice')
})

t.test('Fastify: committed in onSend, before the client has the response; failures become the response', async (t) => {
  const { events, tx } = recorder((outcome) => outcome.ok && failNext)
  let failNext = false
  const app = Fastify()
  await app.register(fastifyRequestLocals)
  t.teardown(() => app.close())
  app.addHook('onSend', async function commitBeforeSending (_request, reply, payload) {
    events.push(`headersSent:${String(reply.raw.headersSent)}`)
    await endRequestResources()
    return payload
  })
  app.post('/notes', async (request) => {
    await tx.get()
    if ((request.body as { bad?: boolean }).bad === true) throw Object.assign(new Error('bad note'), { statusCode: 400 })
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const post = (body: object) => send({ port: portOf(app.server), method: 'POST', path: '/notes', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  const ok = await post({})
  t.equal(ok.status, 200)
  t.same(events.splice(0), ['begin', 'headersSent:false', 'commit'], 'the commit happened before any byte of the response')

  const bad = await post({ bad: true })
  t.equal(bad.status, 400)
  t.same(events.splice(0), ['begin', 'headersSent:false', 'rollback:failed:bad note'], 'a thrown 4xx rolls back')

  failNext = true
  const broken = await post({})
  t.equal(broken.status, 500, 'a failed commit is answered with an error, not a success')
  t.match(broken.json(), { code: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED' })
  t.same(events.splice(0, 3), ['begin', 'headersSent:false', 'commit'])
})

t.test('a dispose that throws a non-Error is reported with its value', async (t) => {
  const odd = defineRequestResource({
    name: 'odd',
    create: () => 1,
    // eslint-disable-next-line prefer-promise-reject-errors -- the point: a client library that rejects with a string
    dispose: () => Promise.reject('plain string')
  })
  await runWithLocals({}, async () => {
    await odd.get()
    await t.rejects(endRequestResources(), { message: /"odd" failed: plain string\./, cause: 'plain string' })
  })
})
