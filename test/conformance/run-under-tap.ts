import type { Test } from 'tap'
import { core, targets } from './adapters.js'
import { conformance } from './cases.js'
import { coreConformance } from './core.js'
import type { Test as Register } from './harness.js'

// Node runs the suite under tap, so it counts toward coverage; Bun and Deno
// run the same cases through portable.ts.

function underTap (t: Test): Register {
  return (name, fn) => { t.test(name, (t) => fn({ teardown: (teardown) => { t.teardown(teardown) } })) }
}

/**
 * Runs part `part` (0-based) of `parts` of the conformance suite: the core
 * cases, then every target that runs on Node, dealt out in turn. The suite is
 * split over a few test files so that they run side by side; one process
 * per target would cost more to start than most targets take to run.
 */
export function runConformance (t: Test, part: number, parts: number): void {
  // Several targets, two of them HTTP/2 through a gateway: more than
  // .taprc's 120 s on a busy machine.
  t.setTimeout(900000)
  const runs = [
    { name: core.name, run: async (t: Test) => { coreConformance(underTap(t)) } },
    ...targets.filter((target) => target.runtimes.node === true).map((target) => ({
      name: target.name,
      run: async (t: Test) => { conformance(underTap(t), await target.load()) }
    }))
  ]
  runs.forEach(({ name, run }, index) => {
    if (index % parts === part) t.test(name, run)
  })
}
