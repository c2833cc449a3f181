// Where a variant's server spends its CPU: `node bench/profile.mjs <variant>
// [scenario] [seconds] [node-binary]` runs it under --cpu-prof, drives the
// scenario, and prints the functions with the most self time. The profile is
// kept (path printed) for Chrome DevTools or speedscope.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { measure } from './load.mjs'
import { pinSelf, startServer } from './processes.mjs'
import { scenarios } from './scenarios.mjs'
import { table } from './stats.mjs'

const [variant, scenarioName = 'small', seconds = '10', node = process.execPath] = process.argv.slice(2)
const scenario = scenarios.find((s) => s.name === scenarioName)
if (variant === undefined || scenario === undefined) {
  console.error('Usage: node bench/profile.mjs <variant> [small|locals|body] [seconds] [node-binary]')
  process.exit(1)
}

pinSelf()
const dir = mkdtempSync(join(tmpdir(), 'request-locals-profile-'))
const server = await startServer(node, variant, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
await measure(server.port, scenario, { seconds: 2, connections: 10, pipelining: 10 })
await measure(server.port, scenario, { seconds: Number(seconds), connections: 10, pipelining: 10 })
await server.stop()

const file = join(dir, readdirSync(dir).find((name) => name.endsWith('.cpuprofile')))
const profile = JSON.parse(readFileSync(file, 'utf8'))
// Self time per node is its share of samples; sum it per function.
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map()
const deltas = profile.timeDeltas
let total = 0
profile.samples.forEach((id, i) => {
  const { functionName, url, lineNumber } = byId.get(id).callFrame
  const where = url === '' ? '' : `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|bench)\//, '$1/')}:${lineNumber + 1}`
  const key = `${functionName || '(anonymous)'} ${where}`.trim()
  self.set(key, (self.get(key) ?? 0) + deltas[i])
  total += deltas[i]
})
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, 30).map(([key, us]) => [`\`${key}\``, (100 * us / total).toFixed(1)])
console.log(table(['function', 'self %'], rows))
console.log(`\nprofile: ${file}`)
