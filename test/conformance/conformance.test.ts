import t from 'tap'
import { adapters } from './adapters.js'
import { conformance } from './cases.js'

// One process for the four adapters: the cases are the same, and a tap
// process per adapter would cost more to start than the cases take to run.
// Six targets (two of them HTTP/2 through a gateway): more than .taprc's
// 120 s on a busy machine.
t.setTimeout(600000)
for (const adapter of Object.values(adapters)) {
  t.test(adapter.name, async (t) => { conformance(t, adapter) })
}
