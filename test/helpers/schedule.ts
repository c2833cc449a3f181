import { seededRandom } from '../../bench/cli.mjs'

export { seededRandom }
import { deferred } from './http.js'

// Seeded request schedules for the randomized interleaving test: which
// stages of each request await, what, for how long, which requests throw or
// abort and where. Everything is drawn from one seed, so a failing run is
// replayed by running that seed again.

/**
 * What one stage of a request does before it checks its locals:
 * - `sync`: nothing, the check runs at once;
 * - `microtasks`: awaits that many resolved promises;
 * - `immediate`: awaits a setImmediate (the next turn of the event loop);
 * - `timer`: awaits a timer of `ms` (interleaving noise only: nothing waits on it);
 * - `gate`: waits until the sequencer releases it, in the schedule's order.
 */
export type Step =
  | { kind: 'sync' }
  | { kind: 'microtasks', count: number }
  | { kind: 'immediate' }
  | { kind: 'timer', ms: number }
  | { kind: 'gate' }

export interface RequestPlan {
  readonly id: string
  /** The step of each stage, in stage order. */
  readonly steps: readonly Step[]
  /** The stage at which the handler code throws (after its step), if any. */
  readonly throwAt: number | undefined
  /** The stage at which the client goes away (the server signals it on arrival), if any. */
  readonly abortAt: number | undefined
  /** The stage that first gets the per-request resource, if any. */
  readonly resourceAt: number | undefined
  /** A JSON body sent in this many chunks, or undefined for a GET. */
  readonly bodyChunks: number | undefined
}

export interface Schedule {
  readonly seed: number
  readonly requests: readonly RequestPlan[]
  /** Every gate, as [request index, stage index], in the order the sequencer releases them. */
  readonly gateOrder: ReadonlyArray<readonly [number, number]>
}

export interface ScheduleOptions {
  readonly requests: number
  /** The stage names, in the order a request passes them. */
  readonly stages: readonly string[]
  /** The stages where a throw fails the request (not those after the response). */
  readonly throwable: readonly number[]
}

function pickStep (random: () => number): Step {
  const r = random()
  if (r < 0.3) return { kind: 'sync' }
  if (r < 0.5) return { kind: 'microtasks', count: 1 + Math.floor(random() * 3) }
  if (r < 0.65) return { kind: 'immediate' }
  if (r < 0.75) return { kind: 'timer', ms: Math.floor(random() * 3) }
  return { kind: 'gate' }
}

/** Draws a whole schedule from `seed`. */
export function makeSchedule (seed: number, options: ScheduleOptions): Schedule {
  const random = seededRandom(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
  const stageIndexes = options.stages.map((_, i) => i)
  const requests: RequestPlan[] = Array.from({ length: options.requests }, (_, n) => ({
    id: `s${seed}-r${n}`,
    steps: options.stages.map(() => pickStep(random)),
    throwAt: random() < 0.12 ? pick(options.throwable) : undefined,
    abortAt: random() < 0.15 ? pick(stageIndexes) : undefined,
    resourceAt: random() < 0.7 ? pick(stageIndexes) : undefined,
    bodyChunks: random() < 0.4 ? 1 + Math.floor(random() * 3) : undefined
  }))
  // A random merge of every request's gates that keeps each request's own
  // order: any such order can be released without waiting on the impossible.
  const pending = requests.map((plan) => plan.steps.flatMap((step, stage) => step.kind === 'gate' ? [stage] : []))
  const gateOrder: Array<readonly [number, number]> = []
  for (let left = pending.reduce((sum, gates) => sum + gates.length, 0); left > 0; left--) {
    const candidates = pending.flatMap((gates, n) => gates.length > 0 ? [n] : [])
    const n = pick(candidates)
    gateOrder.push([n, pending[n].shift()!])
  }
  return { seed, requests, gateOrder }
}

/**
 * The seeds to run: `SEED=n` replays one, `SEEDS=a,b,c` several; otherwise
 * the fixed ones plus one fresh random seed (printed by the test, so that a
 * failure it finds can be replayed).
 */
export function seedsToRun (fixed: readonly number[], env: NodeJS.ProcessEnv = process.env): number[] {
  if (env.SEED !== undefined && env.SEED !== '') return [Number(env.SEED)]
  if (env.SEEDS !== undefined && env.SEEDS !== '') return env.SEEDS.split(',').map(Number)
  return [...fixed, Math.floor(Math.random() * 2 ** 31)]
}

/**
 * Releases gates in the schedule's order. A stage at a gate calls `wait`;
 * the sequencer releases the gates one by one, each once its request has
 * arrived there or has ended (an aborted or failed request never arrives:
 * its gate is released anyway, so that nothing waits on it).
 */
export class Sequencer {
  readonly #arrived = new Map<string, ReturnType<typeof deferred<void>>>()
  readonly #released = new Map<string, ReturnType<typeof deferred<void>>>()
  readonly #ended = new Map<string, ReturnType<typeof deferred<void>>>()

  #entry (map: Map<string, ReturnType<typeof deferred<void>>>, key: string): ReturnType<typeof deferred<void>> {
    let entry = map.get(key)
    if (entry === undefined) {
      entry = deferred()
      map.set(key, entry)
    }
    return entry
  }

  /** Called by the request's code at a gate: resolves when the gate is released. */
  wait (id: string, stage: number): Promise<void> {
    this.#entry(this.#arrived, `${id}:${stage}`).resolve()
    return this.#entry(this.#released, `${id}:${stage}`).promise
  }

  /**
   * Called when the request will not pass its remaining gates in order: its
   * response has closed, or it threw (a framework then skips stages, and the
   * error response must not wait on gates ordered after them).
   */
  ended (id: string): void {
    this.#entry(this.#ended, id).resolve()
  }

  /** The gates not yet released, for a report of a run that hung. */
  unreleased (schedule: Schedule): string[] {
    return schedule.gateOrder.map(([n, stage]) => `${schedule.requests[n].id}:${stage}`).filter((key) => !this.#releasedKeys.has(key))
  }

  readonly #releasedKeys = new Set<string>()

  /** Releases every gate of `schedule` in order; resolves when the last is released. */
  async run (schedule: Schedule): Promise<void> {
    for (const [n, stage] of schedule.gateOrder) {
      const { id } = schedule.requests[n]
      const key = `${id}:${stage}`
      await Promise.race([this.#entry(this.#arrived, key).promise, this.#entry(this.#ended, id).promise])
      this.#entry(this.#released, key).resolve()
      this.#releasedKeys.add(key)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
}

/** Runs a stage's step: resolves (or returns at once, for `sync`) when it is done. */
export function runStep (step: Step, gate: () => Promise<void>): Promise<void> | undefined {
  switch (step.kind) {
    case 'sync': return undefined
    case 'microtasks': {
      let chain = Promise.resolve()
      for (let i = 0; i < step.count; i++) chain = chain.then(() => {})
      return chain
    }
    case 'immediate': return new Promise((resolve) => setImmediate(resolve))
    case 'timer': return new Promise((resolve) => setTimeout(resolve, step.ms))
    case 'gate': return gate()
  }
}
