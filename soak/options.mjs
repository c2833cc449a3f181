// The soak's command-line flags, each also settable as an environment
// variable (--requests 50000 or SOAK_REQUESTS=50000; a flag wins).
import { defineFlags, list, nodeCache, thisNode } from '../bench/cli.mjs'

const flags = {
  requests: { type: 'string', default: '1000000', help: 'requests per server and Node version, warm-up included' },
  connections: { type: 'string', default: '128', help: 'keep-alive connections, each with one request in flight' },
  server: { type: 'string', default: 'fastify', help: 'fastify, express, or both (at the same time)' },
  node: { type: 'string', help: 'comma-separated Node binaries or major versions for the servers (default: this Node), as for npm run bench' },
  transport: { type: 'string', default: 'h1', help: 'h1 (keep-alive connections), or h2: Fastify over HTTP/2 with TLS, the requests as streams over --sessions sessions' },
  sessions: { type: 'string', default: '4', help: 'HTTP/2 sessions the streams share (--transport h2)' },
  seed: { type: 'string', default: '1', help: 'seed of the request mix, bodies, delays and aborts' },
  'max-delay': { type: 'string', default: '2', help: 'upper bound (ms) of each random pause, client and server side' },
  'abort-share': { type: 'string', default: '0.02', help: 'share of requests the client aborts (mid-body, while waiting, mid-response)' },
  warmup: { type: 'string', help: 'requests before the first heap reading (default: 10 % of --requests, at most 50000)' },
  'heap-limit': { type: 'string', default: '5', help: 'MB the heap may grow between the two readings before the run fails' },
  json: { type: 'boolean', help: 'print the results as one JSON line instead of markdown' },
  help: { type: 'boolean' }
}

const cli = defineFlags({ command: 'npm run soak', envPrefix: 'SOAK', flags })

export function usage () {
  return cli.usage()
}

export function readOptions (argv = process.argv.slice(2), env = process.env) {
  const { given, value: get, number } = cli.read(argv, env)
  const server = get('server')
  if (!['fastify', 'express', 'both'].includes(server)) throw new Error(`--server must be fastify, express or both; found ${JSON.stringify(server)}.`)
  const transport = get('transport')
  if (!['h1', 'h2'].includes(transport)) throw new Error(`--transport must be h1 or h2; found ${JSON.stringify(transport)}.`)
  if (transport === 'h2' && server !== 'fastify') throw new Error('--transport h2 runs the Fastify server only (Fastify with http2: true); leave --server out.')
  const requests = Math.floor(number('requests', get('requests'), 1))
  const warmup = get('warmup')
  return {
    help: given('help') === true,
    json: given('json') === true,
    requests,
    connections: Math.floor(number('connections', get('connections'), 1)),
    servers: server === 'both' ? ['fastify', 'express'] : [server],
    transport,
    sessions: Math.floor(number('sessions', get('sessions'), 1)),
    node: list(get('node') ?? thisNode),
    seed: Math.floor(number('seed', get('seed'), 0)),
    maxDelay: number('max-delay', get('max-delay'), 0),
    abortShare: number('abort-share', get('abort-share'), 0, 1),
    warmup: warmup === undefined ? Math.min(50000, Math.floor(requests / 10)) : Math.floor(number('warmup', warmup, 0, requests)),
    heapLimitMb: number('heap-limit', get('heap-limit'), 0),
    nodeCache
  }
}
