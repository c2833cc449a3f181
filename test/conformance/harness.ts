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
 * order, whether `fn` passed, threw or hung: for runners whose own per-test
 * clean-up hooks and timeouts differ (or are missing) between runtimes. A
 * case still running after `timeoutMs` fails, so one event a runtime never
 * emits costs one failed case, not a stuck run.
 */
export async function withTeardowns (fn: (context: CaseContext) => Promise<void>, timeoutMs = 60_000): Promise<void> {
  const teardowns: Array<() => unknown> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the case was still running after ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    await Promise.race([fn({ teardown: (teardown) => { teardowns.push(teardown) } }), timedOut])
  } finally {
    clearTimeout(timer)
    for (const teardown of teardowns.reverse()) await teardown()
  }
}
