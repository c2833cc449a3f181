// Micro-benchmarks, run in their own process on the Node under test:
// `node bench/micro.mjs [ms-per-sample]` prints JSON ns/op medians.
// Cases run interleaved, sample after sample, so a burst of load from another
// process on the machine slows every case alike rather than one.
import { requestLocal, runWithLocals, tryGetLocals } from 'request-locals'

// The storage requestLocal reads: the library keeps it on globalThis under a
// registered symbol, which gives the "direct getStore()[key]" baseline the
// very same AsyncLocalStorage.
const storage = globalThis[Symbol.for('request-locals')]
const sampleMs = Number(process.argv[2] ?? 20)
const samples = 21
let sink = 0

function noop () {
  return 1
}

// Each case does `n` operations and returns something derived from them, so
// the loop cannot be optimised away.
const cases = {
  'read: getStore()[key]' (n) {
    let hits = 0
    for (let i = 0; i < n; i++) if (storage.getStore().user !== undefined) hits++
    return hits
  },
  'read: requestLocal.key' (n) {
    let hits = 0
    for (let i = 0; i < n; i++) if (requestLocal.user !== undefined) hits++
    return hits
  },
  // The read the README recommends for hot loops: the store once, then
  // plain property reads.
  'read: tryGetLocals() once, then .key' (n) {
    let hits = 0
    const locals = tryGetLocals()
    for (let i = 0; i < n; i++) if (locals.user !== undefined) hits++
    return hits
  },
  'read: tryGetLocals().key' (n) {
    let hits = 0
    for (let i = 0; i < n; i++) if (tryGetLocals().user !== undefined) hits++
    return hits
  },
  'write: getStore()[key] = v' (n) {
    for (let i = 0; i < n; i++) storage.getStore().count = i
    return storage.getStore().count
  },
  'write: requestLocal.key = v' (n) {
    for (let i = 0; i < n; i++) requestLocal.count = i
    return requestLocal.count
  },
  'scope: als.run({}, fn)' (n) {
    let total = 0
    for (let i = 0; i < n; i++) total += storage.run({}, noop)
    return total
  },
  // The store request-locals opens: no prototype, so no key can resolve to
  // Object.prototype. Separates the cost of that object from our own code.
  'scope: als.run(Object.create(null), fn)' (n) {
    let total = 0
    for (let i = 0; i < n; i++) total += storage.run(Object.create(null), noop)
    return total
  },
  'scope: runWithLocals({}, fn)' (n) {
    let total = 0
    for (let i = 0; i < n; i++) total += runWithLocals({}, noop)
    return total
  }
}

// Reads and writes run inside a scope, as they do in a request; scopes are
// opened from outside any scope, as a request's is.
function inScope (name, fn) {
  if (name.startsWith('scope')) return fn()
  return storage.run({ user: { id: 'u1' }, count: 0 }, fn)
}

function time (name, n) {
  const start = process.hrtime.bigint()
  sink += inScope(name, () => cases[name](n))
  return Number(process.hrtime.bigint() - start) / n
}

function calibrate (name) {
  let n = 1000
  for (;;) {
    const start = process.hrtime.bigint()
    inScope(name, () => cases[name](n))
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    if (ms >= sampleMs / 4) return Math.max(1000, Math.round(n * sampleMs / ms))
    n *= 4
  }
}

const sizes = {}
for (const name of Object.keys(cases)) {
  calibrate(name) // warm-up: lets the JIT optimise the loop before it counts
  sizes[name] = calibrate(name)
}
const timings = Object.fromEntries(Object.keys(cases).map((name) => [name, []]))
for (let s = 0; s < samples; s++) {
  for (const name of Object.keys(cases)) timings[name].push(time(name, sizes[name]))
}
const median = (values) => values.sort((a, b) => a - b)[values.length >> 1]
process.stdout.write(JSON.stringify({
  nsPerOp: Object.fromEntries(Object.entries(timings).map(([name, values]) => [name, median(values)])),
  sink
}) + '\n')
