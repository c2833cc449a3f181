import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import http, { type IncomingHttpHeaders } from 'node:http'
import { defineRequestResource, hasLocals, requestLocal, runWithLocals } from '../../src/index.js'
import { Barrier, deferred, keepAliveAgent, send } from '../helpers/http.js'
import { HOP_COUNT, readUserAcrossHops } from '../helpers/hops.js'
import { currentUser, type Adapter, type AppSpec } from './app.js'
import { currentRuntime, type CaseContext, type Test } from './harness.js'
import '../helpers/locals.js'

// The cases every adapter must pass, over real keep-alive sockets. Each
// request carries its own identity in `x-user`; every case checks that every
// point of the request's life saw that identity and no other.

const CONCURRENT = 500

const randomDelay = (max = 5) => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * max))
const userOf = (headers: IncomingHttpHeaders): string => String(headers['x-user'])

type Started = Awaited<ReturnType<Adapter['start']>>

async function start (t: CaseContext, adapter: Adapter, spec: AppSpec): Promise<Started> {
  const server = await adapter.start(spec)
  t.teardown(server.close)
  return server
}

function agentFor (t: CaseContext, sockets: number): http.Agent {
  const agent = keepAliveAgent(sockets)
  t.teardown(() => agent.destroy())
  return agent
}

/** An `enter` that authenticates from the header, then holds every request at a barrier. */
function authenticateAt (barrier: Barrier): AppSpec['enter'] {
  return async (headers) => {
    requestLocal.user = { id: userOf(headers) }
    await barrier.arrive()
    await randomDelay()
  }
}

export function conformance (test: Test, adapter: Adapter): void {
  // First, so that a warning a runtime prints once per process (Deno's for
  // reading a request's signal) is still to come when it runs.
  test('serving requests makes the runtime print no warning', async (t) => {
    const warnings: string[] = []
    const { warn } = console
    const onWarning = (warning: Error): void => { warnings.push(`process warning: ${warning.message}`) }
    console.warn = (...args: unknown[]) => { warnings.push(`console.warn: ${args.map(String).join(' ')}`) }
    process.on('warning', onWarning)
    t.teardown(() => {
      console.warn = warn
      process.off('warning', onWarning)
    })
    const resource = defineRequestResource({ name: 'quiet', create: () => ({}), dispose: () => {} })
    const { port } = await start(t, adapter, {
      enter: async (headers) => {
        requestLocal.user = { id: userOf(headers) }
        if (headers['x-mode'] === 'resource') await resource.get()
      },
      handle: async ({ body }) => ({ body, end: currentUser() })
    })
    // Twelve rounds over the same three sockets: more requests per socket
    // than an emitter's default 10 listeners, should any be left on it.
    const agent = agentFor(t, 3)
    for (let round = 0; round < 12; round++) {
      await Promise.all([
        send({ port, agent, headers: { 'x-user': 'plain' } }),
        send({ port, agent, headers: { 'x-user': 'resource', 'x-mode': 'resource' } }),
        send({ port, agent, method: 'POST', headers: { 'x-user': 'body', 'content-type': 'application/json' }, body: '{"a":1}' })
      ])
    }
    assert.deepEqual(warnings, [], 'no warning printed')
  })

  test(`${CONCURRENT} concurrent keep-alive requests, twice over the same sockets, each read only their own user`, async (t) => {
    // One socket per in-flight request, so the barrier releases all of them
    // at once; the second round reuses the kept-alive sockets.
    const { port } = await start(t, adapter, {
      enter: authenticateAt(new Barrier(CONCURRENT)),
      handle: async () => ({ hops: await readUserAcrossHops(), end: currentUser() })
    })
    const agent = agentFor(t, CONCURRENT)
    const responses = await Promise.all(Array.from({ length: 2 * CONCURRENT }, (_, i) =>
      send({ port, agent, headers: { 'x-user': `user-${i}` } })))
    let mismatches = 0
    responses.forEach((res, i) => {
      const { hops, end } = res.json<{ hops: string[], end: string }>()
      if (end !== `user-${i}` || hops.length !== HOP_COUNT || hops.some((id) => id !== `user-${i}`)) mismatches++
    })
    assert.equal(mismatches, 0, 'no request saw another request\'s user, nor lost its own')
  })

  test('bodies sent in chunks with pauses keep their scope in the body parser and after it', async (t) => {
    const count = 100
    const sockets = 25
    // The rest of each body is sent only once the server has reached the
    // request's body parser, so the parser really waits for chunks from the
    // socket instead of finding the whole body already buffered.
    const reading = new Map(Array.from({ length: count }, (_, i) => [`user-${i}`, deferred()]))
    const barrier = new Barrier(sockets)
    const { port } = await start(t, adapter, {
      enter: async (headers) => {
        requestLocal.user = { id: userOf(headers) }
        await barrier.arrive()
        reading.get(userOf(headers))!.resolve()
      },
      handle: async ({ body, parsedIn }) => ({ body, parsedIn, hops: await readUserAcrossHops(), end: currentUser() })
    })
    const agent = agentFor(t, sockets)
    const responses = await Promise.all(Array.from({ length: count }, (_, i) => {
      let first = true
      return send({
        port,
        agent,
        method: 'POST',
        headers: { 'x-user': `user-${i}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body: JSON.stringify({ n: i, padding: 'x'.repeat(200) }),
        chunks: 4,
        pause: async () => {
          if (first) await reading.get(`user-${i}`)!.promise
          first = false
          await randomDelay(4)
        }
      })
    }))
    const wrong = responses.flatMap((res, i) => {
      const { body, parsedIn, hops, end } = res.json<{ body: { n: number }, parsedIn: string, hops: string[], end: string }>()
      const ok = res.status === 200 && body.n === i && parsedIn === `user-${i}` && end === `user-${i}` &&
        hops.length === HOP_COUNT && hops.every((id) => id === `user-${i}`)
      return ok ? [] : [{ i, status: res.status, n: body?.n, parsedIn, end }]
    })
    assert.deepEqual(wrong, [], 'every body arrived whole, and its parser and handler saw its own user')
  })

  test('errors thrown by handlers reach the error path inside the request\'s scope', async (t) => {
    const count = 60
    const { port } = await start(t, adapter, {
      enter: authenticateAt(new Barrier(count)),
      handle: ({ headers }) => {
        const mode = headers['x-mode']
        if (mode === 'sync') throw new Error(`sync failure of ${currentUser()}`)
        if (mode === 'async') return randomDelay().then(() => { throw new Error(`async failure of ${currentUser()}`) })
        return { end: currentUser() }
      },
      onError: (err) => ({ message: (err as Error).message, seen: currentUser() })
    })
    const agent = agentFor(t, count)
    const modes = ['sync', 'async', 'none']
    const responses = await Promise.all(Array.from({ length: count }, (_, i) =>
      send({ port, agent, headers: { 'x-user': `user-${i}`, 'x-mode': modes[i % 3] } })))
    const wrong = responses.flatMap((res, i) => {
      const body = res.json<{ message?: string, seen?: string, end?: string }>()
      const mode = modes[i % 3]
      const ok = mode === 'none'
        ? res.status === 200 && body.end === `user-${i}`
        : res.status === 500 && body.seen === `user-${i}` && body.message === `${mode} failure of user-${i}`
      return ok ? [] : [{ i, mode, status: res.status, body }]
    })
    assert.deepEqual(wrong, [], 'every failure was handled in its own scope; the others were not disturbed')
  })

  test('requests aborted mid-body are seen closing inside their own scope', async (t) => {
    const count = 20
    const arrived = new Map(Array.from({ length: count }, (_, i) => [`user-${i}`, deferred()]))
    const closed = new Map<string, string>()
    const allClosed = deferred()
    const { port } = await start(t, adapter, {
      enter: (headers) => {
        requestLocal.user = { id: userOf(headers) }
        arrived.get(userOf(headers))?.resolve()
      },
      handle: () => ({ unreachable: true }),
      // Every request here is aborted, so every close counts: `finished` is
      // not read, because Bun reports a response the error path wrote after
      // the client went away as finished.
      onClose: (headers) => {
        closed.set(userOf(headers), currentUser())
        if (closed.size === count) allClosed.resolve()
      }
    })
    for (let i = 0; i < count; i++) {
      // Half a body: the server waits for the rest, and the client goes away
      // once the server has the request in hand.
      const client = http.request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-user': `user-${i}`, 'content-type': 'application/json', 'content-length': '100' } })
      client.on('error', () => {})
      client.write('{"half":')
      void arrived.get(`user-${i}`)!.promise.then(() => client.destroy())
    }
    await allClosed.promise
    const wrong = [...closed].filter(([user, seen]) => user !== seen)
    assert.deepEqual(wrong, [], 'each abort was observed in the aborted request\'s scope')
  })

  test('responses that finish are seen closing inside their own scope', async (t) => {
    const count = 50
    const closed = new Map<string, string>()
    const allClosed = deferred()
    const { port } = await start(t, adapter, {
      enter: authenticateAt(new Barrier(count)),
      handle: () => ({ end: currentUser() }),
      onClose: (headers, finished) => {
        if (!finished) return
        closed.set(userOf(headers), currentUser())
        if (closed.size === count) allClosed.resolve()
      }
    })
    const agent = agentFor(t, count)
    await Promise.all(Array.from({ length: count }, (_, i) => send({ port, agent, headers: { 'x-user': `user-${i}` } })))
    await allClosed.promise
    assert.deepEqual([...closed].filter(([user, seen]) => user !== seen), [])
  })

  test('resources are released once per request, in its scope, completed, failed or aborted', async (t) => {
    const completed = 20
    const failed = 10
    const aborted = 10
    const total = completed + failed + aborted
    const disposals: string[] = []
    const allDisposed = deferred()
    const resource = defineRequestResource({
      name: 'conformance',
      create: () => ({ owner: currentUser() }),
      dispose: (value, outcome) => {
        disposals.push(`${value.owner}/${currentUser()}:${outcome.status}`)
        if (disposals.length === total) allDisposed.resolve()
      }
    })
    const arrived = new Map(Array.from({ length: aborted }, (_, i) => [`aborted-${i}`, deferred()]))
    // Deno's servers do not tell that a client went away while its body was
    // being read (the read fails with BadResource; Deno.serve aborts the
    // request's signal only after the response, and its `completed` promise
    // resolves): such a request ends 'failed' there, rolled back all the same.
    const abortedBodyStatus = currentRuntime() === 'deno' && (adapter.name === 'hono' || adapter.name === 'fastify') ? 'failed' : 'aborted'
    const { port } = await start(t, adapter, {
      enter: async (headers) => {
        requestLocal.user = { id: userOf(headers) }
        await Promise.all([resource.get(), resource.get()])
        arrived.get(userOf(headers))?.resolve()
      },
      handle: async ({ headers }) => {
        await randomDelay()
        if (headers['x-mode'] === 'fail') throw new Error('handler failed')
        return { end: currentUser() }
      }
    })
    const agent = agentFor(t, 20)
    const sent = [
      ...Array.from({ length: completed }, (_, i) => send({ port, agent, headers: { 'x-user': `completed-${i}` } })),
      ...Array.from({ length: failed }, (_, i) => send({ port, agent, headers: { 'x-user': `failed-${i}`, 'x-mode': 'fail' } }))
    ]
    for (let i = 0; i < aborted; i++) {
      const client = http.request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-user': `aborted-${i}`, 'content-type': 'application/json', 'content-length': '100' } })
      client.on('error', () => {})
      client.write('{"half":')
      void arrived.get(`aborted-${i}`)!.promise.then(() => client.destroy())
    }
    await Promise.all(sent)
    await allDisposed.promise
    const expected = [
      ...Array.from({ length: completed }, (_, i) => `completed-${i}/completed-${i}:completed`),
      ...Array.from({ length: failed }, (_, i) => `failed-${i}/failed-${i}:failed`),
      ...Array.from({ length: aborted }, (_, i) => `aborted-${i}/aborted-${i}:${abortedBodyStatus}`)
    ]
    assert.deepEqual([...disposals].sort(), expected.sort(), 'one disposal per request, in its own scope, with its outcome')
  })

  test('code the adapter does not cover gets the strict outside-scope error', async (t) => {
    const { port } = await start(t, adapter, {
      handle: () => ({}),
      outside: () => {
        try {
          return { read: requestLocal.user ?? null, inScope: hasLocals() }
        } catch (err) {
          return { code: (err as { code?: string }).code, message: (err as Error).message, inScope: hasLocals() }
        }
      }
    })
    const res = await send({ port, path: '/outside' })
    const { code, message, inScope } = res.json<{ code?: string, message?: string, inScope?: boolean }>()
    assert.deepEqual({ code, inScope }, { code: 'ERR_REQUEST_LOCALS_NO_SCOPE', inScope: false })
    assert.match(message ?? '', /requestLocal\.user was read outside a request scope/)
  })

  test('defaults given as an object are copied per request, never shared', async (t) => {
    const count = 50
    const defaults = { tenant: 'public', tags: ['base'] }
    const barrier = new Barrier(count)
    const { port } = await start(t, adapter, {
      defaults,
      enter: async (headers) => {
        requestLocal.tags!.push(userOf(headers))
        requestLocal.tenant = userOf(headers)
        await barrier.arrive()
        await randomDelay()
      },
      handle: () => ({ tenant: requestLocal.tenant, tags: requestLocal.tags })
    })
    const agent = agentFor(t, count)
    const responses = await Promise.all(Array.from({ length: 2 * count }, (_, i) => send({ port, agent, headers: { 'x-user': `user-${i}` } })))
    const wrong = responses.filter((res, i) => JSON.stringify(res.json()) !== JSON.stringify({ tenant: `user-${i}`, tags: ['base', `user-${i}`] }))
    assert.deepEqual(wrong.map((res) => res.text), [], 'every request started from its own copy')
    assert.deepEqual(defaults, { tenant: 'public', tags: ['base'] }, 'the options object is untouched')
  })

  test('defaults given as a function are called per request with that request', async (t) => {
    const count = 50
    const { port } = await start(t, adapter, {
      defaults: (request) => ({ tenant: `tenant-of-${userOf(request.headers)}` }),
      enter: authenticateAt(new Barrier(count)),
      handle: () => ({ tenant: requestLocal.tenant })
    })
    const agent = agentFor(t, count)
    const responses = await Promise.all(Array.from({ length: count }, (_, i) => send({ port, agent, headers: { 'x-user': `user-${i}` } })))
    assert.deepEqual(responses.filter((res, i) => res.json<{ tenant: string }>().tenant !== `tenant-of-user-${i}`).map((res) => res.text), [])
  })

  test('a server started inside runWithLocals still gives each request a fresh store', async (t) => {
    await runWithLocals({ tenant: 'outer' }, async () => {
      const { port } = await start(t, adapter, {
        handle: () => {
          const before = requestLocal.tenant ?? null
          requestLocal.tenant = 'written by a request'
          return { before }
        }
      })
      const agent = agentFor(t, 1)
      assert.deepEqual((await send({ port, agent })).json(), { before: null })
      assert.deepEqual((await send({ port, agent })).json(), { before: null }, 'the second request on the socket starts empty too')
      assert.equal(requestLocal.tenant, 'outer', 'the enclosing scope is untouched')
    })
  })

  test('another library\'s async context, opened before the adapter, is preserved', async (t) => {
    const trace = new AsyncLocalStorage<string>()
    const { port } = await start(t, adapter, {
      trace,
      defaults: { tenant: 't' },
      handle: async () => {
        await randomDelay()
        return { trace: trace.getStore(), tenant: requestLocal.tenant }
      }
    })
    const agent = agentFor(t, 2)
    const responses = await Promise.all(['a', 'b'].map((user) => send({
      port, agent, method: 'POST', headers: { 'x-user': user, 'content-type': 'application/json' }, body: '{"a":1}', chunks: 2, pause: () => randomDelay()
    })))
    assert.deepEqual(responses.map((res) => res.json()), [{ trace: 'trace-a', tenant: 't' }, { trace: 'trace-b', tenant: 't' }])
  })
}
