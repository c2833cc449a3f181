import t from 'tap'
import http from 'node:http'
import express from 'express'
import { expressRequestLocals } from '../../src/express.js'
import { requestLocal } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf, send } from '../helpers/http.js'
import { appWithUsers } from '../helpers/users.js'
import '../helpers/locals.js'

// A queue whose worker loop was started outside any request: the callbacks it
// runs have no scope. Read while a request is in flight, the error says that
// the context was most likely lost in a callback, and how to fix it.
const queue: Array<() => void> = []
const worker = setInterval(() => { for (const job of queue.splice(0)) job() }, 1)
t.teardown(() => clearInterval(worker))

function readInLostCallback (): Promise<Error> {
  return new Promise((resolve) => {
    queue.push(() => {
      try {
        void requestLocal.user
      } catch (err) {
        resolve(err as Error)
      }
    })
  })
}

const hint = /Requests are in flight right now, so this code most likely runs in a callback that lost its request's context.*bindLocals\(fn\).*bindEmitter\(emitter\)/

t.test('Fastify (scopeRawEvents): a read in a callback that lost the scope, while a request is in flight, says so', async (t) => {
  const app = await appWithUsers(t, undefined, { scopeRawEvents: true })
  app.get('/', async () => ({ message: (await readInLostCallback()).message }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await send({ port: portOf(app.server) })
  t.match(res.json(), { message: hint })
})

t.test('Express: the same, and the count goes back down when responses close', async (t) => {
  const app = express()
  app.use(expressRequestLocals())
  const release = deferred()
  app.get('/', (_req, res, next) => {
    readInLostCallback().then(async (err) => { await release.promise; res.json({ message: err.message }) }, next)
  })
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const agent = keepAliveAgent(4)
  t.teardown(() => agent.destroy())
  const pending = Promise.all([1, 2, 3].map(() => send({ port: portOf(server), agent })))
  release.resolve()
  for (const res of await pending) t.match(res.json(), { message: hint })
  t.throws(() => requestLocal.user, { code: 'ERR_REQUEST_LOCALS_NO_SCOPE', message: /^(?!.*Requests are in flight)/s }, 'with no request in flight, no such hint')
})
