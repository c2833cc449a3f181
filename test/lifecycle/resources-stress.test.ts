import t from 'tap'
import http, { type ServerResponse } from 'node:http'
import Fastify from 'fastify'
import fastifyRequestLocals from '../../src/fastify.js'
import { defineRequestResource, requestLocal } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf } from '../helpers/http.js'
import '../helpers/locals.js'

declare module '../../src/index.js' {
  interface RequestLocals {
    raw?: ServerResponse
  }
}

// A randomized run over real keep-alive sockets mixing every way a request
// ends: requests that use no resource, succeed, throw in the handler or a
// hook, fail to create, fail to dispose, and clients that go away at random
// moments. Whatever the interleaving, every instance made is disposed exactly
// once, after its response closed, and never seen by another request.
const TOTAL = 10_000
const CONCURRENCY = 64
const kinds = ['plain', 'ok', 'two', 'throw', 'hook', 'create-fails', 'dispose-fails', 'abort'] as const
type Kind = typeof kinds[number]

interface Instance { id: number, request: string, raw: ServerResponse }

t.test(`${TOTAL} random requests: creates === disposes, none outlives its request, unused scopes create nothing`, async (t) => {
  let nextId = 0
  let live = 0
  const idle = { wanted: false, resolve: () => {} }
  const disposedIds = new Map<number, number>()
  const createdBy = new Map<string, number>()
  const problems: string[] = []

  const make = (name: string) => defineRequestResource<Instance>({
    name,
    async create () {
      const request = requestLocal.seen!
      if (request.startsWith('create-fails')) throw new Error('cannot connect')
      if (Math.random() < 0.5) await new Promise((resolve) => setImmediate(resolve))
      live++
      createdBy.set(request, (createdBy.get(request) ?? 0) + 1)
      return { id: nextId++, request, raw: requestLocal.raw! }
    },
    async dispose (instance, outcome) {
      if (Math.random() < 0.5) await Promise.resolve()
      disposedIds.set(instance.id, (disposedIds.get(instance.id) ?? 0) + 1)
      if (!instance.raw.destroyed) problems.push(`${instance.request}: disposed before its response closed`)
      const kind = instance.request.split(':')[0] as Kind
      const expected = kind === 'ok' || kind === 'two' || kind === 'dispose-fails' ? 'completed' : kind === 'abort' ? undefined : 'failed'
      if (expected !== undefined && outcome.status !== expected) problems.push(`${instance.request}: ${outcome.status}, expected ${expected}`)
      live--
      if (live === 0 && idle.wanted) idle.resolve()
      if (kind === 'dispose-fails' && name === 'b') throw new Error('rollback failed')
    }
  })
  const a = make('a')
  const b = make('b')

  const app = Fastify()
  await app.register(fastifyRequestLocals, { defaults: (request) => ({ seen: String(request.headers['x-id']) }) })
  app.addHook('onRequest', async (_request, reply) => { requestLocal.raw = reply.raw })
  const check = (instance: Instance): void => {
    if (instance.request !== requestLocal.seen) problems.push(`${requestLocal.seen}: got ${instance.request}'s instance`)
  }
  const pause = (): Promise<unknown> => Math.random() < 0.5 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, Math.random() * 2))
  app.get('/:kind', {
    preHandler: async (request) => {
      if ((request.params as { kind: Kind }).kind === 'hook') {
        check(await a.get())
        throw new Error('hook failed')
      }
    }
  }, async (request) => {
    const { kind } = request.params as { kind: Kind }
    if (kind === 'plain') return 'plain'
    check(await a.get())
    await pause()
    if (kind === 'two' || kind === 'dispose-fails' || kind === 'abort') {
      const [first, second] = await Promise.all([b.get(), b.get()])
      if (first !== second) problems.push(`${requestLocal.seen}: two instances of b`)
      check(first)
      await pause()
    }
    if (kind === 'throw') throw new Error('handler failed')
    check(await a.get())
    return kind
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = portOf(app.server)
  const agent = keepAliveAgent(CONCURRENCY)

  const statuses = new Map<Kind, Set<number | string>>()
  function one (n: number): Promise<void> {
    const kind = kinds[Math.floor(Math.random() * kinds.length)]
    return new Promise((resolve) => {
      const req = http.get({ port, host: '127.0.0.1', agent, path: `/${kind}`, headers: { 'x-id': `${kind}:${n}` } }, (res) => {
        res.resume()
        res.on('end', () => {
          statuses.set(kind, (statuses.get(kind) ?? new Set()).add(res.statusCode!))
          resolve()
        })
      })
      req.on('error', () => {})
      req.on('close', () => resolve())
      if (kind === 'abort') setTimeout(() => req.destroy(), Math.random() * 3)
    })
  }

  let started = 0
  async function worker (): Promise<void> {
    while (started < TOTAL) await one(started++)
  }
  const begin = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  agent.destroy()
  await app.close()
  if (live > 0) {
    const drained = deferred()
    idle.wanted = true
    idle.resolve = drained.resolve
    await drained.promise
  }
  t.comment(`${TOTAL} requests in ${Math.round(performance.now() - begin)} ms, ${nextId} instances`)

  t.same(problems, [], 'no early disposal, wrong outcome or shared instance')
  t.equal(disposedIds.size, nextId, 'creates === disposes')
  t.equal([...disposedIds.values()].every((count) => count === 1), true, 'each disposed exactly once')
  t.equal(live, 0, 'none outlives its request')
  t.equal([...createdBy.keys()].filter((request) => request.startsWith('plain:')).length, 0, 'requests that never call get() create nothing')
  t.ok(nextId > TOTAL / 2, 'the run made instances')
  t.same([...(statuses.get('ok') ?? [])], [200])
  t.same([...(statuses.get('throw') ?? [])], [500])
  t.same([...(statuses.get('create-fails') ?? [])], [500])
})
