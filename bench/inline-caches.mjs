// Inline-cache misses per request, from V8's own log:
//   node bench/inline-caches.mjs <variant,variant…> [scenario] [requests] [node]
// On Node 20 and 22 every Express request and response gets hidden classes
// of its own, so each property read or write on them, by Express, Node or
// this package, misses V8's inline caches and takes the runtime's slow path:
// the count of misses says how many of those reads a version of the
// per-request path makes, which the wall clock on this machine cannot tell
// apart. Each variant's server runs with --log-ic, is warmed, then serves
// `requests` requests (default 2000); the misses logged meanwhile are divided
// by them, in total and for the functions this package compiles (named in
// the log by the source file they come from: dist/).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nodeCache, resolveNodes } from './cli.mjs'
import { drive } from './load.mjs'
import { startServer } from './processes.mjs'
import { scenarios } from './scenarios.mjs'

const [names = 'express-hand-rolled-als,express-request-locals', scenarioName = 'locals', requests = '2000', nodeEntry = process.versions.node.split('.')[0]] = process.argv.slice(2)
const scenario = scenarios.find((s) => s.name === scenarioName)
if (scenario === undefined) throw new Error(`Unknown scenario ${JSON.stringify(scenarioName)}; expected one of ${scenarios.map((s) => s.name).join(', ')}.`)
const [node] = resolveNodes([nodeEntry], nodeCache)
const amount = Number(requests)

// The log's code-creation lines give each compiled function's address range
// and name (which ends with its file); an IC line gives the address of the
// code that missed, its kind and the property's name.
function misses (log) {
  const codes = []
  const events = []
  for (const line of log.split('\n')) {
    const fields = line.split(',')
    if (fields[0] === 'code-creation') {
      const start = Number.parseInt(fields[4], 16)
      codes.push({ start, end: start + Number(fields[5]), name: fields.slice(6).join(',') })
    } else if (/IC$/.test(fields[0] ?? '') && fields.length > 8) {
      events.push({ pc: Number.parseInt(fields[1], 16), key: fields[8] })
    }
  }
  codes.sort((a, b) => a.start - b.start)
  const ownerOf = (pc) => {
    let low = 0
    let high = codes.length - 1
    while (low <= high) {
      const middle = (low + high) >> 1
      if (codes[middle].start <= pc) low = middle + 1
      else high = middle - 1
    }
    const code = codes[high]
    return code !== undefined && pc < code.end ? code.name : ''
  }
  const ours = new Map()
  for (const { pc, key } of events) {
    const owner = ownerOf(pc)
    if (!/\/dist\//.test(owner)) continue
    const where = `${owner.split(' ')[0].replace(/^\S*:/, '')} ${key}`
    ours.set(where, (ours.get(where) ?? 0) + 1)
  }
  return { total: events.length, ours }
}

for (const variant of names.split(',')) {
  const dir = mkdtempSync(join(tmpdir(), 'request-locals-ic-'))
  const logfile = join(dir, 'v8.log')
  const server = await startServer(node.bin, variant, ['--log-ic', `--logfile=${logfile}`, '--no-logfile-per-isolate'], { pin: false })
  let log
  try {
    let warm
    try {
      await drive(server.port, scenario, { amount: 3000, connections: 4 })
      // V8 writes its log as it goes: what is there after the warm-up is skipped.
      warm = statSync(logfile).size
      await drive(server.port, scenario, { amount, connections: 4 })
    } finally {
      // The log is complete once the server has exited.
      await server.stop()
    }
    log = readFileSync(logfile, 'utf8')
    const header = log.slice(0, warm).split('\n').filter((line) => line.startsWith('code-creation')).join('\n')
    log = `${header}\n${log.slice(warm)}`
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const { total, ours } = misses(log)
  const own = [...ours.values()].reduce((sum, n) => sum + n, 0)
  process.stdout.write(`${node.version} ${scenario.name} ${variant}: ${(total / amount).toFixed(1)} inline-cache misses per request, ${(own / amount).toFixed(2)} in request-locals\n`)
  for (const [where, n] of [...ours].sort((a, b) => b[1] - a[1]).slice(0, 8)) process.stdout.write(`  ${(n / amount).toFixed(2)}  ${where}\n`)
}
