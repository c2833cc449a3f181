import { readFileSync } from 'node:fs'
import t from 'tap'
import { behaviourTable, documentPaths, tableIn } from './table.js'

t.test('docs/runtimes.md and the README show the adapters × runtimes table CI runs', async (t) => {
  for (const path of documentPaths) {
    t.equal(tableIn(readFileSync(path, 'utf8')), behaviourTable(), `${path}: regenerate it with npx tsx test/conformance/table.ts --write`)
  }
})
