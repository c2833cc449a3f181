import t from 'tap'
import { targets } from './adapters.js'
import { conformance } from './cases.js'

// Node runs the suite under tap, so it counts toward coverage; Bun and Deno
// run the same cases through portable.ts. One process for every target: the
// cases are the same, and a tap process per target would cost more to start
// than the cases take to run.
for (const target of targets) {
  if (target.runtimes.node !== true) continue
  t.test(target.name, async (t) => {
    const adapter = await target.load()
    conformance((name, fn) => { t.test(name, (t) => fn({ teardown: (teardown) => { t.teardown(teardown) } })) }, adapter)
  })
}
