// `npm run soak`: isolation under load. For each Node binary and server
// (Fastify by default; `--server express` or `both`), 1,000,000 requests,
// each with a user of its own, over keep-alive connections, with random
// delays, chunked bodies and client aborts; every value the service code
// reads back is checked, by the client and by the server. Prints a report;
// exits with 1 if any run found a mismatch, a loss, an error, unbalanced
// resources, a crash or heap growth. Flags: `npm run soak -- --help`.
import { cpus, loadavg } from 'node:os'
import { progress, resolveNodes } from '../bench/cli.mjs'
import { fixed, table } from '../bench/stats.mjs'
import { readOptions, usage } from './options.mjs'
import { failures, soakOne } from './soak.mjs'

const options = readOptions()
if (options.help) {
  console.log(usage())
  process.exit(0)
}
const log = (message) => process.stderr.write(`${message}\n`)

function report (results) {
  const mb = (bytes) => fixed(bytes / 2 ** 20, 2)
  const rows = [
    ['requests sent', (r) => r.client.sent],
    ['answers verified', (r) => r.client.verified],
    ['aborted by the client (mid-body / waiting / mid-response)', (r) => `${r.client.aborted.body} / ${r.client.aborted.waiting} / ${r.client.aborted.response}`],
    ['values checked (client / server)', (r) => `${r.client.reads} / ${r.counters.reads}`],
    ['**mismatches** (client / server)', (r) => `**${r.client.mismatches} / ${r.counters.mismatches}**`],
    ['**losses** (client / server)', (r) => `**${r.client.losses} / ${r.counters.losses}**`],
    ['errors (client / server)', (r) => `${r.client.errors} / ${r.counters.errors}`],
    ['server: scopes opened / parser aborts', (r) => `${r.counters.scopes} / ${r.counters.abortErrors}`],
    ['resources created / disposed', (r) => `${r.counters.created} / ${r.counters.disposed}`],
    ['disposal outcomes (completed / failed / aborted)', (r) => `${r.counters.outcomes.completed} / ${r.counters.outcomes.failed} / ${r.counters.outcomes.aborted}`],
    ['req/s', (r) => fixed(r.rps, 0)],
    ['server CPU µs / request', (r) => fixed(r.cpuPerRequest, 1)],
    ['heap after warm-up / at the end (MB, after GC)', (r) => `${mb(r.heap.before)} / ${mb(r.heap.after)}`],
    ['heap growth (MB)', (r) => mb(r.heap.delta)],
    ['duration (s)', (r) => fixed(r.seconds, 0)],
    ['verdict', (r) => r.failures.length === 0 ? 'pass' : `**FAIL**: ${r.failures.join('; ')}`]
  ]
  return table(['', ...results.map((r) => `${r.server} on ${r.node}`)], rows.map(([name, cell]) => [name, ...results.map(cell)]))
}

const nodes = resolveNodes(options.node, options.nodeCache)
const started = new Date()
const results = []
// One progress line (a terminal only) for every run, however many go at once.
const meter = progress(nodes.length * options.servers.length * options.requests, 'requests')
const sentBefore = { done: 0 }
for (const node of nodes) {
  // The servers' runs go on at the same time, each with its own server
  // process and its own connections: Fastify's run leaves a core half idle
  // that Express's can use, which keeps a full soak under 10 minutes here.
  const sent = Object.fromEntries(options.servers.map((framework) => [framework, 0]))
  const runs = options.servers.map(async (framework) => {
    const result = await soakOne(node, framework, options, (count) => {
      sent[framework] = count
      meter.update(sentBefore.done + Object.values(sent).reduce((a, b) => a + b, 0), `${options.servers.join(' + ')} on ${node.version}`)
    })
    result.failures = failures(result, options)
    for (const sample of result.client.samples) log(`  ${framework}: ${JSON.stringify(sample)}`)
    return result
  })
  results.push(...await Promise.all(runs))
  sentBefore.done += options.servers.length * options.requests
}
meter.end()

if (options.json) {
  console.log(JSON.stringify(results))
} else {
  console.log([
    `### Soak of ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`, '',
    `- machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end; load generator: undici in this process (${process.version})${options.servers.length > 1 ? ', both servers\' runs at the same time' : ''}; nothing pinned`,
    `- ${options.requests} requests per run (${options.warmup} of warm-up before the first heap reading), ${options.connections} keep-alive connections, pauses of 0–${options.maxDelay} ms, ${options.abortShare * 100} % aborted, seed ${options.seed}; heap limit ${options.heapLimitMb} MB`,
    `- command: \`npm run soak -- ${process.argv.slice(2).join(' ')}\``.replace(' -- `', '`'), '',
    report(results), ''
  ].join('\n'))
}
if (results.some((r) => r.failures.length > 0)) process.exitCode = 1
