// The small interface the conformance cases are written against, so the same
// cases run under tap on Node (with coverage) and under the node:test-style
// runners of Bun (`bun test`) and Deno (`deno test`), where tap does not run.
// Cases assert with node:assert/strict, which every one of those runtimes has.

/** The JavaScript runtimes the conformance suite knows. */
export type Runtime = 'node' | 'bun' | 'deno'

/** What a case is given: a place to register clean-up (servers, agents). */
export interface CaseContext {
  /** Runs after the case, passed or failed, last registered first. */
  teardown: (fn: () => unknown) => void
}

/** Registers one case with whichever runner runs the suite. */
export type Test = (name: string, fn: (context: CaseContext) => Promise<void>) => void

/** The runtime this process is: Bun and Deno announce themselves on globalThis. */
export function currentRuntime (): Runtime {
  if ('Bun' in globalThis) return 'bun'
  if ('Deno' in globalThis) return 'deno'
  return 'node'
}

/**
 * Runs `fn` with a context whose teardowns all run afterwards, in reverse
 * order, whether `fn` passed or threw: for runners whose own per-test
 * clean-up hooks differ (or are missing) between runtimes.
 */
export async function withTeardowns (fn: (context: CaseContext) => Promise<void>): Promise<void> {
  const teardowns: Array<() => unknown> = []
  try {
    await fn({ teardown: (teardown) => { teardowns.push(teardown) } })
  } finally {
    for (const teardown of teardowns.reverse()) await teardown()
  }
}
