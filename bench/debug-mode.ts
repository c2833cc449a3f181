// Micro-benchmark of debug mode: the cost of a request-like unit of work
// (open a scope, write, read across an await) with debug mode never turned
// on, turned on, and turned off again. Off must match never-on: the hot path
// holds no debug code, only the NO_SCOPE error path asks for the hint.
//
//   npx tsx bench/debug-mode.ts
import { requestLocal, runWithLocals, setLocalsDebug } from '../src/index.js'

declare module '../src/index.js' {
  interface RequestLocals { benchUser?: string, benchHits?: number }
}

const UNITS = 200_000
const ROUNDS = 7

async function unit (i: number): Promise<void> {
  await runWithLocals({ benchUser: `u${i}` }, async () => {
    requestLocal.benchHits = 1
    await Promise.resolve()
    if (requestLocal.benchUser === undefined || requestLocal.benchHits !== 1) throw new Error('lost')
  })
}

async function measure (units = UNITS): Promise<number> {
  const perRound: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < units; i++) await unit(i)
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    perRound.push(units / seconds)
  }
  perRound.sort((a, b) => a - b)
  return perRound[Math.floor(ROUNDS / 2)]
}

const format = (opsPerSecond: number): string => `${Math.round(opsPerSecond / 1000)}k units/s`

await measure() // warm-up
const neverOn = await measure()

setLocalsDebug(true)
const on = await measure(UNITS / 20) // on is far slower: fewer units, same rounds
setLocalsDebug(false)
const offAgain = await measure()
console.log(`node ${process.version}, median of ${ROUNDS} rounds of ${UNITS} units (scope + write + await + 2 reads)`)
console.log(`debug never on : ${format(neverOn)}`)
console.log(`debug on       : ${format(on)} (${(neverOn / on).toFixed(1)}x slower)`)
console.log(`debug off again: ${format(offAgain)} (${((offAgain / neverOn - 1) * 100).toFixed(1)}% vs never on)`)
