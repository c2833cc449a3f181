import t from 'tap'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { requestLocal, runWithLocals, setLocalsDebug } from '../../src/index.js'
import { deferred, send, portOf } from '../helpers/http.js'
import { JobQueue } from '../helpers/pools.js'
import '../helpers/locals.js'

// Debug mode adds to NO_SCOPE errors where the failing code's async context
// was created, which is where the scope was lost.

/** The message of the NO_SCOPE error that reading requestLocal.user throws here. */
function lostScopeMessage (): string {
  try {
    void requestLocal.user
    return 'no error'
  } catch (err) {
    return (err as Error).message
  }
}

// A ticker like a metrics library's: one interval, set up at start, calling
// whatever callbacks were registered since, outside any request.
function startTicker (): { register: (fn: () => void) => void, stop: () => void } {
  const callbacks: Array<() => void> = []
  const timer = setInterval(() => { for (const fn of callbacks.splice(0)) fn() }, 1)
  return { register: (fn) => { callbacks.push(fn) }, stop: () => clearInterval(timer) }
}

t.test('debug mode names where a lost callback\'s context was created', async (t) => {
  setLocalsDebug(true)
  t.teardown(() => setLocalsDebug(false))
  const queue = new JobQueue(async (payload: string) => payload)
  t.teardown(() => queue.stop())
  const ticker = startTicker()
  t.teardown(() => ticker.stop())

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRequestLocals)
  app.addHook('onRequest', async () => { requestLocal.user = { id: 'u1' } })
  app.get('/queue', () => new Promise((resolve) => queue.push('x', () => resolve({ message: lostScopeMessage() }))))
  app.get('/ticker', () => new Promise((resolve) => ticker.register(() => resolve({ message: lostScopeMessage() }))))
  await app.listen({ port: 0, host: '127.0.0.1' })

  const fromQueue = (await send({ port: portOf(app.server), path: '/queue' })).json<{ message: string }>().message
  t.match(fromQueue, /^requestLocal\.user was read outside a request scope\. .* \[debug\] This code runs in the async context of a PROMISE resource, created outside the scope at:\n\s+at .*#loop .*pools\.ts:\d+:\d+\)?\n/s,
    'a .then callback: the site is the worker loop where .then was called')
  t.match(fromQueue, /wrap the callback handed over at that point in bindLocals\(fn\)/)

  const fromTicker = (await send({ port: portOf(app.server), path: '/ticker' })).json<{ message: string }>().message
  t.match(fromTicker, /\[debug\] This code runs in the async context of a Timeout resource, created outside the scope at:\n\s+at startTicker .*debug-mode\.test\.ts:\d+:\d+\)?\n/s, 'a timer: the site is where it was set')
})

t.test('resources created before debug mode was on have no known site; off, messages are unchanged', async (t) => {
  const ticker = startTicker()
  t.teardown(() => ticker.stop())
  setLocalsDebug(true)
  const before = deferred<string>()
  runWithLocals({}, () => ticker.register(() => before.resolve(lostScopeMessage())))
  t.match(await before.promise, /\[debug\] This code runs in an async context created before debug mode was turned on/)

  setLocalsDebug(false)
  const off = deferred<string>()
  runWithLocals({}, () => ticker.register(() => off.resolve(lostScopeMessage())))
  t.notMatch(await off.promise, /\[debug\]/)
  t.match(await off.promise, /or use tryGetLocals\(\) where running outside a request is expected\.$/)
})
