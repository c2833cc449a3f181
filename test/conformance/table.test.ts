import { readFileSync } from 'node:fs'
import t from 'tap'
import { behaviourTable, documentPath, tableIn } from './table.js'

t.test('docs/runtimes.md shows the adapters × runtimes table CI runs', async (t) => {
  const document = readFileSync(documentPath, 'utf8')
  t.equal(tableIn(document), behaviourTable(), 'regenerate it with: npx tsx test/conformance/table.ts --write')
})
