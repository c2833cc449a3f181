// `npm run bench`: HTTP throughput and latency of every variant against its
// bare server, heap retention, and micro-benchmarks, on each Node binary
// given; prints the markdown tables bench/README.md shows.
// Flags and their environment variables: `npm run bench -- --help`.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { cpus, loadavg, release } from 'node:os'
import { fileURLToPath } from 'node:url'
import { measure } from './load.mjs'
import { measureHeap } from './memory.mjs'
import { progress, resolveNodes } from './cli.mjs'
import { renderChart } from './chart.mjs'
import { readOptions, usage } from './options.mjs'
import { pinning, pinSelf, serverCore, startServer } from './processes.mjs'
import { scenarios as allScenarios } from './scenarios.mjs'
import { fixed, median, table } from './stats.mjs'
import { baselineOf, variants as allVariants, whyUnavailable } from './variants/index.mjs'

const options = readOptions()
if (options.help) {
  console.log(usage())
  process.exit(0)
}
// Progress goes to a terminal only (see progress in cli.mjs); the report is
// the only output otherwise.
let meter

function selectVariants (patterns) {
  if (patterns.length === 0) return allVariants
  const wanted = new Set(allVariants.filter((v) => patterns.some((p) => v.name.includes(p))).map((v) => v.name))
  for (const v of [...wanted]) wanted.add(baselineOf(allVariants.find((x) => x.name === v)))
  return allVariants.filter((v) => wanted.has(v.name))
}

const selected = selectVariants(options.variants)
const skipped = new Map(selected.map((v) => [v.name, whyUnavailable(v)]).filter(([, why]) => why !== undefined))
const runnable = selected.filter((v) => !skipped.has(v.name))
const scenarios = options.scenarios.length === 0 ? allScenarios : allScenarios.filter((s) => options.scenarios.includes(s.name))

/** Rotates the order each round, so no variant always runs first or after the same neighbour. */
function rotated (list, round) {
  const k = round % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

async function httpPhase (node) {
  const samples = {} // scenario → variant → arrays of per-round figures
  for (const s of scenarios) samples[s.name] = Object.fromEntries(runnable.map((v) => [v.name, { rps: [], p50: [], p99: [], cpu: [], ratio: [], cpuRatio: [] }]))
  // One process per variant for the whole phase, warmed on every scenario
  // before the first round so that the JIT has settled by then.
  const servers = {}
  for (const v of runnable) servers[v.name] = await startServer(node.bin, v.name)
  try {
    for (const v of runnable) {
      if (options.warmup > 0) for (const scenario of scenarios) await measure(servers[v.name].port, scenario, { seconds: Math.max(1, 2 * options.warmup), connections: options.connections, pipelining: options.pipelining })
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const scenario of scenarios) {
        const rps = {}
        const cpu = {}
        for (const v of rotated(runnable, round)) {
          const server = servers[v.name]
          if (options.warmup > 0) await measure(server.port, scenario, { seconds: options.warmup, connections: options.connections, pipelining: options.pipelining })
          const cpuBefore = await server.cpuTime()
          const m = await measure(server.port, scenario, { seconds: options.duration, connections: options.connections, pipelining: options.pipelining })
          const cpuPerRequest = (await server.cpuTime() - cpuBefore) / m.requests
          const into = samples[scenario.name][v.name]
          into.rps.push(m.rps)
          into.p50.push(m.p50)
          into.p99.push(m.p99)
          into.cpu.push(cpuPerRequest)
          rps[v.name] = m.rps
          cpu[v.name] = cpuPerRequest
          meter.step(`${node.version} round ${round + 1}/${options.rounds} ${scenario.name} ${v.name}`)
        }
        for (const v of runnable) {
          samples[scenario.name][v.name].ratio.push(rps[v.name] / rps[baselineOf(v)])
          // The same ratio from CPU time: how many requests this variant serves
          // per CPU-second, relative to bare. Time the server spends waiting for
          // a core another process holds does not count, so this one is robust
          // on a busy machine.
          samples[scenario.name][v.name].cpuRatio.push(cpu[baselineOf(v)] / cpu[v.name])
        }
      }
    }
  } finally {
    await Promise.all(Object.values(servers).map((server) => server.stop()))
  }
  return samples
}

function httpTables (node, samples) {
  const out = []
  for (const scenario of scenarios) {
    const rows = selected.map((v) => {
      if (skipped.has(v.name)) return [v.framework, v.label, `skipped: ${skipped.get(v.name)}`, '', '', '', '', '', '', '', '']
      const m = samples[scenario.name][v.name]
      const b = samples[scenario.name][baselineOf(v)]
      const range = (values) => `${fixed(Math.min(...values), 2)}–${fixed(Math.max(...values), 2)}`
      return [
        v.framework, v.label,
        `**${fixed(median(m.ratio), 3)}**`, range(m.ratio),
        `**${fixed(median(m.cpuRatio), 3)}**`, range(m.cpuRatio),
        // Interference from other processes only ever slows a run down, so
        // each variant's best round is its least disturbed one.
        fixed(Math.max(...m.rps) / Math.max(...b.rps), 3), fixed(Math.min(...b.cpu) / Math.min(...m.cpu), 3),
        fixed(median(m.rps), 0), fixed(median(m.cpu), 1), `${fixed(median(m.p50), 0)} / ${fixed(median(m.p99), 0)}`
      ]
    })
    out.push(`#### ${node.version} · ${scenario.title} (\`${scenario.method} ${scenario.path}\`)`, '',
      table(['framework', 'variant', 'req/s ratio to bare (median)', 'range', 'CPU ratio to bare (median)', 'range', 'best req/s ratio', 'best CPU ratio', 'req/s (median)', 'CPU µs / req (median)', 'p50 / p99 ms'], rows), '')
  }
  return out.join('\n')
}

async function memoryPhase (node) {
  const scenario = allScenarios.find((s) => s.name === 'locals')
  const chosen = runnable.filter((v) => options.memoryVariants.some((p) => v.name.includes(p)))
  const rows = []
  for (const v of chosen) {
    meter.step(`${node.version} heap ${v.name}`)
    const heap = await measureHeap(node.bin, v.name, scenario, { amount: options.memoryRequests, connections: options.connections, pipelining: options.pipelining })
    const mb = (bytes) => fixed(bytes / 2 ** 20, 2)
    rows.push([node.version, v.framework, v.label, mb(heap.afterWarmup), mb(heap.afterLoad), mb(heap.afterLoad - heap.afterWarmup), fixed(heap.perRequest, 2)])
  }
  return rows
}

function microPhase (node) {
  const script = fileURLToPath(new URL('./micro.mjs', import.meta.url))
  const command = pinning ? ['taskset', ['-c', String(serverCore), node.bin, script, String(options.microMs)]] : [node.bin, [script, String(options.microMs)]]
  meter.step(`${node.version} micro-benchmarks`)
  return JSON.parse(execFileSync(command[0], command[1], { encoding: 'utf8' })).nsPerOp
}

function microTable (micro) {
  const baselineOfCase = (name) => name.startsWith('read') ? 'read: getStore()[key]' : name.startsWith('write') ? 'write: getStore()[key] = v' : 'scope: als.run({}, fn)'
  const names = Object.keys(Object.values(micro)[0])
  const rows = names.map((name) => [name, ...Object.values(micro).map((ns) => `${fixed(ns[name], 1)} ns (×${fixed(ns[name] / ns[baselineOfCase(name)], 2)})`)])
  return table(['operation', ...Object.keys(micro)], rows)
}

function summaryTables (byNode) {
  const versions = Object.keys(byNode)
  return scenarios.map((scenario) => {
    const cell = (m, b) => `${fixed(median(m.ratio), 2)} / ${fixed(median(m.cpuRatio), 2)} / ${fixed(Math.min(...b.cpu) / Math.min(...m.cpu), 2)}`
    const rows = selected.filter((v) => !skipped.has(v.name)).map((v) => [v.framework, v.label, ...versions.map((version) => {
      const byVariant = byNode[version][scenario.name]
      return cell(byVariant[v.name], byVariant[baselineOf(v)])
    })])
    return [`#### ${scenario.title} (median req/s ratio / median CPU ratio / best CPU ratio)`, '', table(['framework', 'variant', ...versions], rows), ''].join('\n')
  }).join('\n')
}

pinSelf()
const nodes = resolveNodes(options.node, options.nodeCache)
const started = new Date()
const cpu = cpus()
const report = [
  `### Run of ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC (${options.preset} preset, overridden by any flag in the command below)`, '',
  `- machine: ${cpu.length} × ${cpu[0]?.model.trim()}, Linux ${release()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`,
  `- load generator: autocannon in this process (${process.version}) ${pinning ? 'pinned to core 0' : 'unpinned'}; each server in its own process ${pinning ? 'pinned to core 1' : 'unpinned'}`,
  `- ${options.rounds} rounds × ${options.warmup} s warm-up + ${options.duration} s measurement per variant and scenario, ${options.connections} keep-alive connections × ${options.pipelining} pipelined requests (POST: not pipelined); one process per variant, warmed on every scenario first; variants interleaved, order rotated each round; ratio = req/s over the same round's bare server`,
  `- command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\``.replace(' -- `', '`'), ''
]
const httpByNode = {}
const memoryRows = []
const micro = {}
// One step per measurement, heap check and micro-benchmark run.
const steps = nodes.length * (
  (options.phases.includes('http') ? options.rounds * scenarios.length * runnable.length : 0) +
  (options.phases.includes('memory') ? runnable.filter((v) => options.memoryVariants.some((p) => v.name.includes(p))).length : 0) +
  (options.phases.includes('micro') ? 1 : 0))
{
  const bar = progress(steps, 'steps')
  let done = 0
  meter = { step: (label) => bar.update(done++, label), end: () => { bar.update(done); bar.end() } }
}
for (const node of nodes) {
  if (options.phases.includes('http')) {
    httpByNode[node.version] = await httpPhase(node)
    report.push(`### HTTP on ${node.version}`, '', httpTables(node, httpByNode[node.version]))
  }
  if (options.phases.includes('memory')) memoryRows.push(...await memoryPhase(node))
  if (options.phases.includes('micro')) micro[node.version] = microPhase(node)
}
if (Object.keys(httpByNode).length > 1) report.push('### Summary: median ratio to bare, by Node version', '', summaryTables(httpByNode))
if (memoryRows.length > 0) {
  report.push('### Heap after forced GC', '',
    table(['Node', 'framework', 'variant', 'after warm-up (MB)', `after ${options.memoryRequests} more requests (MB)`, 'growth (MB)', 'bytes / request'], memoryRows), '')
}
if (Object.keys(micro).length > 0) report.push('### Micro-benchmarks (median ns per operation; × = ratio to the direct AsyncLocalStorage operation)', '', microTable(micro), '')

meter.end()
const markdown = report.join('\n')
console.log(markdown)
function write (file, text) {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
}
if (options.out !== undefined) write(options.out, markdown + '\n')
// Every measurement, not only the medians: the chart, or any other reading,
// is drawn from this file.
const results = {
  started: started.toISOString(),
  command: process.argv.slice(2),
  preset: options.preset,
  rounds: options.rounds,
  machine: { cpus: cpu.length, model: cpu[0]?.model.trim(), release: release(), loadAverage: loadavg() },
  variants: selected.filter((v) => !skipped.has(v.name)).map(({ name, framework, label }) => ({ name, framework, label })),
  scenarios: scenarios.map(({ name, title, method, path }) => ({ name, title, method, path })),
  http: httpByNode,
  memory: memoryRows,
  micro
}
if (options.json !== undefined) write(options.json, JSON.stringify(results, null, 1) + '\n')
if (options.svg !== undefined && Object.keys(httpByNode).length > 0) write(options.svg, renderChart(results))
