// What bindEmitter costs per request (bind one emitter, emit once), against
// binding its emit with AsyncLocalStorage.bind (what bindEmitter did before).
// Usage: npm run build && taskset -c 1 node bench/bind-emitter.mjs
import { AsyncLocalStorage } from 'node:async_hooks'
import { EventEmitter } from 'node:events'
import { bindEmitter, runWithLocals, requestLocal } from '../dist/index.js'

const ROUNDS = 5
const PER_ROUND = 100_000
let sink = 0

function withAlsBind (emitter) {
  emitter.emit = AsyncLocalStorage.bind(emitter.emit)
  return emitter
}

function measure (bind) {
  const started = process.hrtime.bigint()
  for (let i = 0; i < PER_ROUND; i++) {
    runWithLocals({ tenant: String(i) }, () => {
      const job = bind(new EventEmitter())
      job.on('done', () => { sink += requestLocal.tenant.length })
      job.emit('done')
    })
  }
  return Number(process.hrtime.bigint() - started) / PER_ROUND
}

const results = { bindEmitter: [], 'AsyncLocalStorage.bind': [] }
measure(bindEmitter)
measure(withAlsBind)
for (let round = 0; round < ROUNDS; round++) {
  results.bindEmitter.push(measure(bindEmitter))
  results['AsyncLocalStorage.bind'].push(measure(withAlsBind))
}
const median = (values) => values.sort((a, b) => a - b)[values.length >> 1]
console.log(`Node ${process.version}: ns per scope + bind + emit, median of ${ROUNDS} interleaved rounds of ${PER_ROUND}`)
for (const [name, values] of Object.entries(results)) console.log(`  ${name.padEnd(24)} ${median(values).toFixed(0)}`)
if (sink === 0) console.log('(nothing read)')
