import t from 'tap'
import { adapters } from './adapters.js'
import { conformance } from './cases.js'

// One process for the four adapters: the cases are the same, and a tap
// process per adapter would cost more to start than the cases take to run.
for (const adapter of Object.values(adapters)) {
  t.test(adapter.name, async (t) => { conformance(t, adapter) })
}
