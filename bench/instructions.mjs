// Instructions per request, counted by valgrind's callgrind: a figure that
// other processes on the machine cannot disturb, for comparing two versions
// of the per-request path when wall-clock and CPU time are too noisy.
//   node bench/instructions.mjs <variant,variant…> [scenario] [requests] [node]
// Each variant's server runs under callgrind with instrumentation off, is
// warmed (the JIT settles), then instrumentation is switched on for
// `requests` requests (default 2000) and the total is divided by them.
// Needs valgrind (callgrind_control on the PATH); slow: about a minute each.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { drive } from './load.mjs'
import { startServer } from './processes.mjs'
import { scenarios } from './scenarios.mjs'
import { nodeCache, resolveNodes } from './cli.mjs'

const [names = 'fastify-bare,fastify-request-locals', scenarioName = 'small', requests = '2000', nodeEntry = process.versions.node.split('.')[0]] = process.argv.slice(2)
const scenario = scenarios.find((s) => s.name === scenarioName)
if (scenario === undefined) throw new Error(`Unknown scenario ${JSON.stringify(scenarioName)}; expected one of ${scenarios.map((s) => s.name).join(', ')}.`)
const [node] = resolveNodes([nodeEntry], nodeCache)
const amount = Number(requests)

async function count (variant) {
  const dir = mkdtempSync(join(tmpdir(), 'request-locals-callgrind-'))
  // --smc-check: V8 writes and rewrites machine code at run time. One file
  // per thread, and only the main thread's is counted: V8 compiles and
  // collects garbage on helper threads whenever it sees fit, which made
  // counts of the same server differ by 10 % from run to run.
  const valgrind = ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all', '--separate-threads=yes', `--callgrind-out-file=${join(dir, 'out.%p')}`, node.bin]
  const server = await startServer('valgrind', variant, valgrind, { pin: false })
  try {
    await drive(server.port, scenario, { amount: 3000, connections: 4 })
    const pid = await server.ask('pid', 'pid')
    execFileSync('callgrind_control', ['--instr=on', String(pid)], { stdio: 'ignore' })
    await drive(server.port, scenario, { amount, connections: 4 })
    execFileSync('callgrind_control', ['--instr=off', String(pid)], { stdio: 'ignore' })
  } finally {
    await server.stop()
  }
  const total = readdirSync(dir).filter((file) => file.endsWith('-01')).map((file) => readFileSync(join(dir, file), 'utf8').match(/^totals: (\d+)/m)?.[1]).filter(Boolean).map(Number).reduce((a, b) => a + b, 0)
  rmSync(dir, { recursive: true, force: true })
  return total / amount
}

const rows = []
for (const variant of names.split(',')) {
  const perRequest = await count(variant)
  rows.push({ variant, perRequest })
  process.stderr.write(`${node.version} ${scenario.name} ${variant}: ${Math.round(perRequest)} instructions/request\n`)
}
console.log(JSON.stringify({ node: node.version, scenario: scenario.name, requests: amount, instructionsPerRequest: Object.fromEntries(rows.map((r) => [r.variant, Math.round(r.perRequest)])) }))
