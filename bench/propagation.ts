// What propagation costs: the headers added to one outgoing fetch/undici
// call (the 'undici:request:create' subscriber, measured on the request
// object undici builds, without the network), and deciding an incoming
// request's id with and without trusting its upstream.
// Run: npx tsx bench/propagation.ts   (CALLS=20000 ROUNDS=51 to change the size)
import { channel } from 'node:diagnostics_channel'
import { compileRequestIdPolicy, resolveRequestId } from '../src/headers/request-id.js'
import { propagateRequestLocals } from '../src/propagation.js'
import { runWithLocals } from '../src/index.js'

const CALLS = Number(process.env.CALLS ?? 20_000)
const ROUNDS = Number(process.env.ROUNDS ?? 51)

function nsPerCall (fn: () => void): number {
  const start = process.hrtime.bigint()
  for (let i = 0; i < CALLS; i++) fn()
  return Number(process.hrtime.bigint() - start) / CALLS
}

// The fastest round: on a shared machine, the others measure the neighbours.
function compare (contenders: Record<string, () => void>): Record<string, number> {
  const best: Record<string, number> = {}
  for (const [name, fn] of Object.entries(contenders)) { nsPerCall(fn); best[name] = Infinity }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of Object.entries(contenders)) best[name] = Math.min(best[name], nsPerCall(fn))
  }
  return best
}

// What undici's Request holds when the channel publishes: fetch's default headers.
const defaults = ['accept', '*/*', 'accept-language', '*', 'sec-fetch-mode', 'cors', 'user-agent', 'node', 'accept-encoding', 'gzip, deflate']
const create = channel('undici:request:create')
function publish (): void {
  const headers = defaults.slice()
  create.publish({ request: { origin: 'http://b.internal', headers, addHeader (name: string, value: string) { headers.push(name, value) } } })
}

const raw = ['Host', 'b.internal', 'X-Request-Id', 'req-from-a', 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'baggage', 'tenant=acme,region=eu', 'Accept', '*/*', 'User-Agent', 'node']
const edge = compileRequestIdPolicy({}, 'bench')
const trusted = compileRequestIdPolicy({ trustUpstream: true, baggage: { keys: ['tenant', 'region'] } }, 'bench')

const stop = propagateRequestLocals({ baggage: ['tenant'] })
await runWithLocals({ tenant: 'acme' }, async () => {
  stop()
  const off = compare({ 'no subscriber': publish })
  const restart = propagateRequestLocals({ baggage: ['tenant'] })
  const on = compare({ 'id + baggage': publish })
  restart()
  console.log(`outgoing call: ${(on['id + baggage'] - off['no subscriber']).toFixed(0)} ns added (${off['no subscriber'].toFixed(0)} → ${on['id + baggage'].toFixed(0)} ns to publish)`)
})
const ids = compare({ edge: () => { resolveRequestId(edge, raw) }, trusted: () => { resolveRequestId(trusted, raw) } })
console.log(`incoming request: ${ids.edge.toFixed(0)} ns (edge: a fresh UUID) vs ${ids.trusted.toFixed(0)} ns (trustUpstream: id, traceparent and two baggage keys)`)
