import { defineRequestResource, requestLocal, type RequestResource, type ScopeOutcome } from '../../src/index.js'
import { deferred } from './http.js'
import './locals.js'

/** A per-request resource stamped with the request that made it. */
export interface Owned { owner: string }

/**
 * A per-request resource that records who made each instance and every
 * disposal, so a fault test can check that each request's instance was
 * disposed exactly once, with the expected outcome, and that none was handed
 * to another request. The owner is `requestLocal.seen` (the test's request id).
 */
export function trackedResource (name = 'conn') {
  const created: string[] = []
  const disposals = new Map<string, ScopeOutcome[]>()
  const waiting = new Map<string, Array<(outcome: ScopeOutcome) => void>>()
  // Made by drained(), outside any scope: a promise made inside dispose
  // would hold that scope's store for as long as the promise lives.
  let idle: ReturnType<typeof deferred<void>> | undefined
  let live = 0

  const resource: RequestResource<Owned> = defineRequestResource({
    name,
    create () {
      const owner = requestLocal.seen ?? '(unset)'
      created.push(owner)
      live++
      return { owner }
    },
    dispose (value, outcome) {
      const list = disposals.get(value.owner) ?? []
      list.push(outcome)
      disposals.set(value.owner, list)
      for (const resolve of waiting.get(value.owner) ?? []) resolve(outcome)
      waiting.delete(value.owner)
      if (--live === 0) {
        idle?.resolve()
        idle = undefined
      }
    }
  })

  /** The outcome of `owner`'s first disposal, once it happens. */
  function disposed (owner: string): Promise<ScopeOutcome> {
    const done = disposals.get(owner)
    if (done !== undefined) return Promise.resolve(done[0])
    return new Promise((resolve) => {
      waiting.set(owner, [...(waiting.get(owner) ?? []), resolve])
    })
  }

  /** Resolves once every instance made so far has been disposed. */
  function drained (): Promise<void> {
    if (live === 0) return Promise.resolve()
    idle ??= deferred()
    return idle.promise
  }

  /** Requests whose instances were not disposed exactly once each, or were made twice. */
  function unbalanced (): string[] {
    const wrong: string[] = []
    for (const owner of new Set(created)) {
      const made = created.filter((id) => id === owner).length
      const gone = disposals.get(owner)?.length ?? 0
      if (made !== 1 || gone !== 1) wrong.push(`${owner}: created ${made}, disposed ${gone}`)
    }
    for (const owner of disposals.keys()) if (!created.includes(owner)) wrong.push(`${owner}: disposed but never created`)
    return wrong
  }

  return { resource, created, disposals, disposed, drained, unbalanced }
}
