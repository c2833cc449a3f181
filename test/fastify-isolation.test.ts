import t from 'tap'
import Fastify from 'fastify'
import fastifyRequestLocals from '../src/fastify.js'
import { requestLocal } from '../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from './helpers/http.js'
import { HOP_COUNT, readUserAcrossHops } from './helpers/hops.js'
import './helpers/locals.js'

const CONCURRENT = 500

async function startServer (barrier: Barrier) {
  const app = Fastify()
  await app.register(fastifyRequestLocals)
  app.addHook('onRequest', async (request) => {
    requestLocal.user = { id: String(request.headers['x-user']) }
    // Every request is held here until all have arrived, so all of them are
    // in flight at once and their continuations interleave.
    await barrier.arrive()
  })
  app.addHook('preHandler', async () => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5))
  })
  const respond = async (request: { body?: unknown }) => ({
    hops: await readUserAcrossHops(),
    body: request.body ?? null,
    end: requestLocal.user?.id
  })
  app.get('/who', respond)
  app.post('/who', respond)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return portOf(app.server)
}

t.test(`${CONCURRENT} concurrent keep-alive requests, twice over the same sockets, each read only their own user`, async (t) => {
  // One socket per in-flight request, so the barrier releases all of them at
  // once; the second round reuses the kept-alive sockets.
  const port = await startServer(new Barrier(CONCURRENT))
  const agent = keepAliveAgent(CONCURRENT)
  t.teardown(() => agent.destroy())
  const responses = await Promise.all(Array.from({ length: 2 * CONCURRENT }, (_, i) =>
    send({ port, agent, path: '/who', headers: { 'x-user': `user-${i}` } })))
  let mismatches = 0
  responses.forEach((res, i) => {
    const { hops, end } = res.json<{ hops: string[], end: string }>()
    if (end !== `user-${i}` || hops.length !== HOP_COUNT || hops.some((id) => id !== `user-${i}`)) mismatches++
  })
  t.equal(mismatches, 0, 'no request saw another request\'s user, nor lost its own')
})

t.test('bodies sent in chunks with pauses between them keep their scope through parsing', async (t) => {
  const count = 100
  const sockets = 25
  const port = await startServer(new Barrier(sockets))
  const agent = keepAliveAgent(sockets)
  t.teardown(() => agent.destroy())
  const pause = () => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 4))
  const responses = await Promise.all(Array.from({ length: count }, (_, i) => send({
    port,
    agent,
    method: 'POST',
    path: '/who',
    headers: { 'x-user': `user-${i}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    body: JSON.stringify({ n: i, padding: 'x'.repeat(200) }),
    chunks: 4,
    pause
  })))
  let mismatches = 0
  responses.forEach((res, i) => {
    const { hops, end, body } = res.json<{ hops: string[], end: string, body: { n: number } }>()
    if (res.status !== 200 || body.n !== i || end !== `user-${i}` || hops.length !== HOP_COUNT || hops.some((id) => id !== `user-${i}`)) mismatches++
  })
  t.equal(mismatches, 0)
})
