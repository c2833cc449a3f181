// The cost of one log line written through requestLogger() compared with
// request.log directly, inside a real Fastify request, and through the
// requestLogger compared with the root outside any request.
// Run: npx tsx bench/logging.ts   (LINES=20000 ROUNDS=51 to change the size)
import Fastify, { type FastifyBaseLogger } from 'fastify'
import pino, { type Logger } from 'pino'
import fastifyRequestLocals from '../src/fastify.js'
import { runWithLocals } from '../src/index.js'
import { addLogBindings, requestLogger } from '../src/pino.js'

const LINES = Number(process.env.LINES ?? 20_000)
const ROUNDS = Number(process.env.ROUNDS ?? 51)

// pino serialises every line as usual; the sink drops it, so the figures
// are the logging path, not the disk.
const sink = { write (_line: string): void {} }
const root = pino({ level: 'info' }, sink)
const log = requestLogger(root)

function nsPerLine (target: Pick<Logger, 'info'>): number {
  const start = process.hrtime.bigint()
  for (let i = 0; i < LINES; i++) target.info({ i }, 'note saved')
  return Number(process.hrtime.bigint() - start) / LINES
}

// The fastest round: on a shared machine, the others measure the neighbours.
function fastest (values: number[]): number {
  return Math.min(...values)
}

// Alternates the contenders round by round, so drift hits both alike.
function compare (contenders: Record<string, Pick<Logger, 'info'>>): Record<string, number> {
  const samples: Record<string, number[]> = {}
  for (const name of Object.keys(contenders)) {
    samples[name] = []
    nsPerLine(contenders[name]) // warm-up
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, target] of Object.entries(contenders)) samples[name].push(nsPerLine(target))
  }
  return Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, fastest(values)]))
}

const results: Record<string, Record<string, number>> = {}

const app = Fastify({ loggerInstance: root as FastifyBaseLogger })
await app.register(fastifyRequestLocals)
app.get('/', async (request) => {
  results['Fastify request'] = compare({ 'request.log': request.log, requestLogger: log })
  addLogBindings({ userId: 'u-1', tenant: 'acme' })
  results['Fastify request, after addLogBindings'] = compare({ 'request.log': request.log, requestLogger: log })
  return 'done'
})
await app.inject('/')
await app.close()

results['runWithLocals scope (child of root)'] = runWithLocals({}, () => {
  addLogBindings({ userId: 'u-1' })
  return compare({ 'own child': root.child({ reqId: 'r', userId: 'u-1' }), requestLogger: log })
})
results['outside any scope'] = compare({ root, requestLogger: log })

console.log(`node ${process.version}, ${LINES} lines per round, fastest of ${ROUNDS} rounds, ns per line`)
for (const [where, figures] of Object.entries(results)) {
  const [[baseName, base], [, ours]] = Object.entries(figures)
  console.log(`${where.padEnd(40)} ${baseName} ${base.toFixed(0)} ns, requestLogger ${ours.toFixed(0)} ns (+${(ours - base).toFixed(0)} ns, ${((ours / base - 1) * 100).toFixed(1)}%)`)
}
