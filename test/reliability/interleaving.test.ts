import t from 'tap'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import express5, { type NextFunction, type Request, type Response } from 'express'
import express4 from 'express4'
import fastifyRequestLocals from '../../src/fastify.js'
import { expressRequestLocals } from '../../src/express.js'
import { requestLocal, tryGetLocals } from '../../src/index.js'
import { deferred, keepAliveAgent, portOf } from '../helpers/http.js'
import { makeSchedule, runStep, seedsToRun, Sequencer, type RequestPlan, type Schedule } from '../helpers/schedule.js'
import { trackedResource } from '../helpers/tracked-resource.js'
import '../helpers/locals.js'

// Randomized interleaving, replayable by seed. For each seed a schedule
// decides, for every request and every stage of its life (each hook, the
// handler, the response's end), whether the stage awaits nothing, a few
// microtasks, the next loop turn, a short timer, or a gate that a sequencer
// releases in a seeded order across all requests; and which requests throw,
// which are abandoned by their client, and where each first gets a
// per-request resource. Gates force the cross-request orders; timers only add
// noise. Whatever the order, every stage must see its own request's locals,
// every response must carry its own data, and every resource must be
// disposed exactly once with the outcome of its own request.
//
// Replay a failing seed:  SEED=1234 npx tap test/reliability/interleaving.test.ts
// Run more seeds:         SEEDS=1,2,3,4 npx tap test/reliability/interleaving.test.ts

const FIXED_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
const REQUESTS = 24
const HANG_MS = 10_000
// The path is this file's own, so the command stays right if the file moves.
const replay = (seed: number): string => `SEED=${seed} npx tap ${relative(process.cwd(), fileURLToPath(import.meta.url))}`

/** Runs stage `n` of the request `id`: its step, then its checks; may throw. */
type StageRunner = (id: string, n: number) => void | Promise<void>

interface Harness {
  readonly stages: readonly string[]
  /** Stages where a throw fails the request. */
  readonly throwable: readonly number[]
  /** Stages that run after the response was sent: resources are refused there. */
  readonly afterResponse: readonly number[]
  /** Starts the app; `opened` is called with each request's response when it arrives. */
  start: (stage: StageRunner, opened: (id: string, res: ServerResponse) => void) => Promise<{ port: number, close: () => Promise<void> }>
}

const idOf = (req: IncomingMessage): string => String(req.headers['x-id'])

const fastify: Harness = {
  stages: ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'handler', 'preSerialization', 'onSend', 'onResponse'],
  throwable: [0, 1, 2, 3, 4, 5, 6],
  afterResponse: [7],
  async start (stage, opened) {
    // Forced, so that a run that hung can still be closed.
    const app = Fastify({ forceCloseConnections: true })
    await app.register(fastifyRequestLocals, { defaults: (request) => ({ seen: idOf(request.raw), tags: [] }) })
    app.addHook('onRequest', async (request, reply) => {
      opened(idOf(request.raw), reply.raw)
      await stage(idOf(request.raw), 0)
    })
    app.addHook('preParsing', async (request, _reply, payload) => { await stage(idOf(request.raw), 1); return payload })
    app.addHook('preValidation', async (request) => { await stage(idOf(request.raw), 2) })
    app.addHook('preHandler', async (request) => { await stage(idOf(request.raw), 3) })
    app.addHook('preSerialization', async (request, _reply, payload) => { await stage(idOf(request.raw), 5); return payload })
    app.addHook('onSend', async (request, _reply, payload) => { await stage(idOf(request.raw), 6); return payload })
    app.addHook('onResponse', async (request) => { await stage(idOf(request.raw), 7) })
    app.setErrorHandler(async (err, _request, reply) => reply.code(500).send({ message: (err as Error).message, seen: requestLocal.seen }))
    const handler = async (request: { raw: IncomingMessage }) => {
      await stage(idOf(request.raw), 4)
      return { id: requestLocal.seen, user: requestLocal.user?.id, tags: [...requestLocal.tags!] }
    }
    app.get('/', handler)
    app.post('/', handler)
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { port: portOf(app.server), close: () => app.close() }
  }
}

function expressHarness (express: typeof express5): Harness {
  // Runs a stage as Express middleware: a sync throw or a rejection goes to next(err).
  const middleware = (stage: StageRunner, n: number) => function scheduledStage (req: Request, _res: Response, next: NextFunction): void {
    let pending
    try {
      pending = stage(idOf(req), n)
    } catch (err) {
      next(err)
      return
    }
    if (pending === undefined) next()
    else pending.then(() => next(), next)
  }
  return {
    stages: ['first', 'afterBody', 'router', 'handler', 'finish'],
    throwable: [0, 1, 2, 3],
    afterResponse: [4],
    async start (stage, opened) {
      const app = express()
      app.use(expressRequestLocals({ defaults: (req) => ({ seen: idOf(req), tags: [] }) }))
      app.use((req: Request, res: Response, next: NextFunction) => {
        opened(idOf(req), res)
        // Response events run in the request's scope (the adapter's doing).
        res.once('finish', () => { void stage(idOf(req), 4) })
        middleware(stage, 0)(req, res, next)
      })
      app.use(express.json())
      app.use(middleware(stage, 1))
      const router = express.Router()
      router.use(middleware(stage, 2))
      router.all('/', middleware(stage, 3), (_req: Request, res: Response) => {
        res.json({ id: requestLocal.seen, user: requestLocal.user?.id, tags: requestLocal.tags })
      })
      app.use(router)
      app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
        res.status(500).json({ message: err.message, seen: requestLocal.seen })
      })
      const server = http.createServer(app)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return {
        port: portOf(server),
        close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
      }
    }
  }
}

const harnesses: Record<string, Harness> = {
  fastify,
  'express 5': expressHarness(express5),
  'express 4': expressHarness(express4 as unknown as typeof express5)
}

interface Received { status: number, body: Record<string, unknown> }

/** Sends one planned request; resolves with its response, or undefined once its client gave up. */
function sendPlanned (port: number, agent: http.Agent, plan: RequestPlan, abort: Promise<void>): Promise<Received | undefined> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ from: plan.id, padding: 'x'.repeat(64) })
    const headers: Record<string, string> = { 'x-id': plan.id }
    if (plan.bodyChunks !== undefined) headers['content-type'] = 'application/json'
    const req = http.request({ port, host: '127.0.0.1', agent, method: plan.bodyChunks === undefined ? 'GET' : 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
      res.on('error', () => resolve(undefined))
    })
    req.on('error', () => resolve(undefined))
    req.on('close', () => resolve(undefined))
    void abort.then(() => req.destroy())
    if (plan.bodyChunks === undefined) {
      req.end()
      return
    }
    void (async () => {
      const size = Math.ceil(body.length / plan.bodyChunks!)
      for (let i = 0; i < body.length; i += size) {
        if (req.destroyed) return
        req.write(body.slice(i, i + size))
        await new Promise((resolve) => setImmediate(resolve))
      }
      req.end()
    })()
  })
}

/** Runs one schedule against one harness; returns what went wrong. */
async function runSchedule (harness: Harness, schedule: Schedule): Promise<string[]> {
  const problems: string[] = []
  const plans = new Map(schedule.requests.map((plan) => [plan.id, plan]))
  const aborts = new Map(schedule.requests.map((plan) => [plan.id, deferred()]))
  const sequencer = new Sequencer()
  const resources = trackedResource()

  function check (id: string, name: string): void {
    const locals = tryGetLocals()
    if (locals?.seen !== id) problems.push(`${id} at ${name}: saw the locals of ${locals === undefined ? 'no scope' : String(locals.seen)}`)
    else if (locals.user?.id !== `user-${id}`) problems.push(`${id} at ${name}: saw user ${String(locals.user?.id)}`)
  }

  function afterStep (plan: RequestPlan, n: number): void | Promise<void> {
    const name = harness.stages[n]
    check(plan.id, name)
    const thrown = plan.throwAt === n ? new Error(`thrown by ${plan.id} at ${name}`) : undefined
    const fail = (): void => {
      if (thrown === undefined) return
      sequencer.ended(plan.id)
      throw thrown
    }
    if (plan.resourceAt !== n) return fail()
    return resources.resource.get().then((instance) => {
      if (instance.owner !== plan.id) problems.push(`${plan.id} at ${name}: got the resource of ${instance.owner}`)
      check(plan.id, `${name} after get()`)
    }, (err: { code?: string }) => {
      const refused = err.code === 'ERR_REQUEST_LOCALS_SCOPE_ENDED' && (plan.abortAt !== undefined || harness.afterResponse.includes(n))
      if (!refused) problems.push(`${plan.id} at ${name}: get() failed with ${String(err.code)}`)
    }).then(fail)
  }

  const stage: StageRunner = (id, n) => {
    const plan = plans.get(id)!
    const name = harness.stages[n]
    // Fastify runs preSerialization and onSend again for the error response.
    if (requestLocal.tags!.includes(name)) return
    if (n === 0) requestLocal.user = { id: `user-${id}` }
    requestLocal.tags!.push(name)
    if (plan.abortAt === n) aborts.get(id)!.resolve()
    const pending = runStep(plan.steps[n], () => sequencer.wait(id, n))
    return pending === undefined ? afterStep(plan, n) : pending.then(() => afterStep(plan, n))
  }

  const closed = new Map(schedule.requests.map((plan) => [plan.id, deferred()]))
  const server = await harness.start(stage, (id, res) => {
    res.once('close', () => {
      sequencer.ended(id)
      closed.get(id)!.resolve()
    })
  })
  const agent = keepAliveAgent(REQUESTS)
  try {
    const sequenced = sequencer.run(schedule)
    const sent = Promise.all(schedule.requests.map((plan) => sendPlanned(server.port, agent, plan, aborts.get(plan.id)!.promise)))
    // A failure detector, not synchronisation: a schedule that deadlocks is
    // reported with its seed instead of hanging until the runner's timeout.
    let watchdog: NodeJS.Timeout | undefined
    const hung = new Promise<'hung'>((resolve) => { watchdog = setTimeout(() => resolve('hung'), HANG_MS) })
    const received = await Promise.race([
      Promise.all([sent, sequenced, ...[...closed.values()].map(({ promise }) => promise), resources.drained()]).then(([received]) => received),
      hung
    ])
    clearTimeout(watchdog)
    if (received === 'hung') return [...problems, `hung after ${HANG_MS} ms; gates never released: ${sequencer.unreleased(schedule).join(', ')}`]

    const handlerStage = harness.stages.indexOf('handler')
    const expectedTags = harness.stages.slice(0, handlerStage + 1)
    schedule.requests.forEach((plan, n) => {
      const res = received[n]
      if (res === undefined) {
        if (plan.abortAt === undefined) problems.push(`${plan.id}: no response, though its client never gave up`)
        return
      }
      // Checked for every response that arrived, aborted or not: what a
      // client receives is always its own.
      if (plan.throwAt !== undefined && (plan.abortAt === undefined || res.status === 500)) {
        const expected = { status: 500, body: { message: `thrown by ${plan.id} at ${harness.stages[plan.throwAt]}`, seen: plan.id } }
        if (JSON.stringify(res) !== JSON.stringify(expected)) problems.push(`${plan.id}: got ${JSON.stringify(res)}, expected ${JSON.stringify(expected)}`)
      } else {
        const expected = { status: 200, body: { id: plan.id, user: `user-${plan.id}`, tags: expectedTags } }
        if (JSON.stringify(res) !== JSON.stringify(expected)) problems.push(`${plan.id}: got ${JSON.stringify(res)}, expected ${JSON.stringify(expected)}`)
      }
      const outcomes = resources.disposals.get(plan.id)
      if (plan.abortAt === undefined && outcomes !== undefined) {
        const expected = plan.throwAt === undefined ? 'completed' : 'failed'
        if (outcomes[0].status !== expected) problems.push(`${plan.id}: its resource ended ${outcomes[0].status}, expected ${expected}`)
      }
    })
    problems.push(...resources.unbalanced())
    if (tryGetLocals() !== undefined) problems.push('a store is current outside every request')
  } finally {
    agent.destroy()
    await server.close()
  }
  return problems
}

const seeds = seedsToRun(FIXED_SEEDS)
t.comment(`seeds: ${seeds.join(', ')} (replay one with SEED=n, several with SEEDS=a,b,c)`)

for (const [name, harness] of Object.entries(harnesses)) {
  t.test(name, async (t) => {
    for (const seed of seeds) {
      const schedule = makeSchedule(seed, { requests: REQUESTS, stages: harness.stages, throwable: harness.throwable })
      const problems = await runSchedule(harness, schedule)
      t.same(problems, [], `${name}, seed ${seed}: every stage saw its own request, every response and resource was its own. Replay: ${replay(seed)}`)
    }
  })
}

t.test('the same seed draws the same schedule; another seed a different one', async (t) => {
  const options = { requests: REQUESTS, stages: fastify.stages, throwable: fastify.throwable }
  t.same(makeSchedule(42, options), makeSchedule(42, options))
  t.notSame(makeSchedule(42, options).requests, makeSchedule(43, options).requests)
  t.same(seedsToRun([1, 2], { SEED: '7' }), [7])
  t.same(seedsToRun([1, 2], { SEEDS: '7,8' }), [7, 8])
  const drawn = seedsToRun([1, 2], {})
  t.same(drawn.slice(0, 2), [1, 2], 'the fixed seeds, then a random one')
  t.equal(drawn.length, 3)
})
