// Instructions per request, counted by valgrind's callgrind: a figure that
// other processes on the machine cannot disturb, for comparing two versions
// of the per-request path when wall-clock and CPU time are too noisy.
//   node bench/instructions.mjs <variant,variant…> [scenario] [requests] [node]
// Each variant's server runs under callgrind with instrumentation off, is
// warmed (the JIT settles), then instrumentation is switched on for
// `requests` requests (default 2000) and the total is divided by them.
// Needs valgrind (callgrind_control on the PATH); slow: about a minute each.
// With --cache-sim, callgrind also simulates the caches and branch predictor
// and every event is given per request (Ir instructions, I1mr/D1mr/D1mw L1
// misses, Bcm/Bim mispredicted branches …): where two variants differ more
// in time than in instructions, stalls are what is left, and this machine's
// CPU counters are not readable.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { drive } from './load.mjs'
import { startServer } from './processes.mjs'
import { scenarios } from './scenarios.mjs'
import { nodeCache, resolveNodes } from './cli.mjs'

const cacheSim = process.argv.includes('--cache-sim')
const [names = 'fastify-bare,fastify-request-locals', scenarioName = 'small', requests = '2000', nodeEntry = process.versions.node.split('.')[0]] = process.argv.slice(2).filter((arg) => arg !== '--cache-sim')
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
  const valgrind = ['--tool=callgrind', ...(cacheSim ? ['--cache-sim=yes', '--branch-sim=yes'] : []), '--instr-atstart=no', '--smc-check=all', '--separate-threads=yes', `--callgrind-out-file=${join(dir, 'out.%p')}`, node.bin]
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
  // The main thread's file ends in -01; its `events:` line names the columns of `totals:`.
  const text = readdirSync(dir).filter((file) => file.endsWith('-01')).map((file) => readFileSync(join(dir, file), 'utf8'))[0] ?? ''
  const events = text.match(/^events: (.*)$/m)?.[1].split(' ') ?? ['Ir']
  const totals = text.match(/^totals: (.*)$/m)?.[1].split(' ').map(Number) ?? []
  rmSync(dir, { recursive: true, force: true })
  return Object.fromEntries(events.map((event, i) => [event, (totals[i] ?? 0) / amount]))
}

const rows = []
for (const variant of names.split(',')) {
  const perRequest = await count(variant)
  rows.push({ variant, perRequest })
  const others = Object.entries(perRequest).filter(([event]) => event !== 'Ir').map(([event, value]) => `${event} ${Math.round(value)}`)
  process.stderr.write(`${node.version} ${scenario.name} ${variant}: ${Math.round(perRequest.Ir)} instructions/request${others.length > 0 ? ` (${others.join(', ')})` : ''}\n`)
}
const perVariant = (event) => Object.fromEntries(rows.map((r) => [r.variant, Math.round(r.perRequest[event])]))
const result = { node: node.version, scenario: scenario.name, requests: amount, instructionsPerRequest: perVariant('Ir') }
if (cacheSim) result.eventsPerRequest = Object.fromEntries(Object.keys(rows[0]?.perRequest ?? {}).map((event) => [event, perVariant(event)]))
console.log(JSON.stringify(result))
