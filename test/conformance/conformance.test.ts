import t from 'tap'
import type { Test } from 'tap'
import { core, targets } from './adapters.js'
import { conformance } from './cases.js'
import { coreConformance } from './core.js'
import type { Test as Register } from './harness.js'

// Node runs the suite under tap, so it counts toward coverage; Bun and Deno
// run the same cases through portable.ts. One process for every target: the
// cases are the same, and a tap process per target would cost more to start
// than the cases take to run.
function underTap (t: Test): Register {
  return (name, fn) => { t.test(name, (t) => fn({ teardown: (teardown) => { t.teardown(teardown) } })) }
}

// Many targets, two of them HTTP/2 through a gateway: more than .taprc's
// 120 s on a busy machine.
t.setTimeout(900000)

t.test(core.name, async (t) => { coreConformance(underTap(t)) })

for (const target of targets) {
  if (target.runtimes.node !== true) continue
  t.test(target.name, async (t) => { conformance(underTap(t), await target.load()) })
}
