// The cost of a request scope on Express and plain node:http, against the
// same servers without one, with a bare AsyncLocalStorage.run (the floor any
// AsyncLocalStorage-based scope pays; the difference is what the adapters'
// event scoping and defaults cost) and with express-http-context.
// Each server runs in its own child process and reports the CPU time it spent
// (process.cpuUsage), so the figure is CPU microseconds per request: unlike
// requests per second, it hardly moves when other work shares the machine.
// Variants are interleaved over several rounds and the median is kept.
//
//   npx tsx bench/http-adapters.ts [seconds per run = 3] [rounds = 3] [only variants matching this pattern]
import { AsyncLocalStorage } from 'node:async_hooks'
import { fork } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import autocannon from 'autocannon'

const variants = [
  'node:http', 'node:http + a bare AsyncLocalStorage.run', 'node:http + withRequestLocals',
  'express', 'express + a bare AsyncLocalStorage.run', 'express + expressRequestLocals', 'express + express-http-context'
] as const
type Variant = typeof variants[number]

async function serve (variant: Variant): Promise<http.Server> {
  const { requestLocal } = await import('../src/index.js')
  const locals = requestLocal as unknown as Record<string, unknown>
  const bare = new AsyncLocalStorage<Record<string, unknown>>()
  if (variant.startsWith('node:http')) {
    const { withRequestLocals } = await import('../src/http.js')
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (variant === 'node:http') {
        res.end('ok')
      } else if (variant === 'node:http + a bare AsyncLocalStorage.run') {
        bare.getStore()!.user = req.headers['x-user']
        res.end(String(bare.getStore()!.user))
      } else {
        locals.user = req.headers['x-user']
        res.end(String(locals.user))
      }
    }
    if (variant === 'node:http + withRequestLocals') return http.createServer(withRequestLocals(handler))
    if (variant === 'node:http') return http.createServer(handler)
    return http.createServer((req, res) => bare.run(Object.create(null), handler, req, res))
  }
  const { default: express } = await import('express')
  const app = express()
  if (variant === 'express + a bare AsyncLocalStorage.run') {
    app.use((_req, _res, next) => { bare.run(Object.create(null), next) })
    app.get('/', (req, res) => { bare.getStore()!.user = req.headers['x-user']; res.send(String(bare.getStore()!.user)) })
  } else if (variant === 'express + expressRequestLocals') {
    const { expressRequestLocals } = await import('../src/express.js')
    app.use(expressRequestLocals())
    app.get('/', (req, res) => { locals.user = req.headers['x-user']; res.send(String(locals.user)) })
  } else if (variant === 'express + express-http-context') {
    const httpContext = (await import('express-http-context')).default
    app.use(httpContext.middleware)
    app.get('/', (req, res) => { httpContext.set('user', req.headers['x-user']); res.send(String(httpContext.get('user'))) })
  } else {
    app.get('/', (_req, res) => { res.send('ok') })
  }
  return http.createServer(app)
}

if (process.argv[2] === '--serve') {
  const server = await serve(process.argv[3] as Variant)
  let start = process.cpuUsage()
  process.on('message', (message) => {
    if (message === 'start') start = process.cpuUsage()
    else {
      const used = process.cpuUsage(start)
      process.send!(used.user + used.system)
    }
  })
  // Exits normally (not by a signal) so that --cpu-prof can write a profile.
  process.on('disconnect', () => process.exit())
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port))
} else {
  const seconds = Number(process.argv[2] ?? 3)
  const rounds = Number(process.argv[3] ?? 3)
  const only = process.argv[4] ?? ''
  const results = new Map<Variant, number[]>(variants.filter((v) => new RegExp(only).test(v)).map((v) => [v, []]))
  for (let round = 0; round < rounds; round++) {
    for (const variant of results.keys()) {
      const child = fork(import.meta.filename, ['--serve', variant], { execArgv: ['--import', 'tsx'] })
      const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)))
      // A warm-up run first, so the JIT has settled before measuring.
      await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 10, duration: 1, headers: { 'x-user': 'u1' } })
      child.send('start')
      const result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 10, duration: seconds, headers: { 'x-user': 'u1' } })
      child.send('stop')
      const cpu = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)))
      results.get(variant)!.push(cpu / result.requests.total)
      child.disconnect()
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  console.log(`node ${process.version}, ${rounds} rounds of ${seconds}s, 10 keep-alive connections, median server CPU µs per request:`)
  const base: Record<string, number> = { node: median(results.get('node:http') ?? [0]), express: median(results.get('express') ?? [0]) }
  for (const [variant, values] of results) {
    const m = median(values)
    const extra = m - base[variant.startsWith('node') ? 'node' : 'express']
    console.log(`${variant.padEnd(42)} ${m.toFixed(1).padStart(7)} µs  ${extra >= 0 ? '+' : ''}${extra.toFixed(1)} µs`)
  }
}
