// One soak server in its own process: `node --expose-gc soak/server.mjs
// <fastify|express> <seed> <maxDelayMs>`, started by soak/run.mjs through
// bench/processes.mjs. It reports its port over IPC and answers:
// 'stats' with its counters once it is quiet (no service call running, every
// resource disposed), 'heap' with heapUsed after forced GCs, 'cpu' with the
// CPU time it has used. It exits when the parent goes away.
import { counters, configure, quiet } from './service.mjs'

const [framework, seed, maxDelay, transport = 'h1'] = process.argv.slice(2)
if (framework !== 'fastify' && framework !== 'express') {
  throw new Error(`Unknown soak server ${JSON.stringify(framework)}: expected fastify or express.`)
}
configure({ seed: Number(seed), maxDelay: Number(maxDelay) })
const { build, listen } = await import(`./${framework}-app.mjs`)
const port = await listen(await build({ transport }))

// How long 'stats' waits for aborted requests' service calls to finish.
const quietTimeoutMs = 10000

process.on('message', async function answer (message) {
  if (message === 'stats') {
    await quiet(quietTimeoutMs)
    process.send({ stats: counters })
  } else if (message === 'heap') {
    // Twice: objects kept alive by finalisers or weak callbacks of the first
    // collection are freed only by a second.
    globalThis.gc()
    globalThis.gc()
    process.send({ heapUsed: process.memoryUsage().heapUsed })
  } else if (message === 'cpu') {
    const { user, system } = process.cpuUsage()
    process.send({ cpu: user + system })
  }
})
process.on('disconnect', () => process.exit(0))
process.send({ port })
