// One server variant in its own process: `node bench/server.mjs <variant>`.
// It reports its port to the parent over IPC, answers 'cpu' messages with the
// CPU time it has used and 'heap' messages with the heap used after a forced
// GC (when started with --expose-gc), and exits when the parent goes away.
// Only the variant's own framework is loaded.
const name = process.argv[2] ?? ''
const modules = { fastify: 'fastify', express: 'express', express4: 'express', http: 'http' }
const framework = modules[name.split('-')[0]]
if (framework === undefined) {
  throw new Error(`Unknown variant ${JSON.stringify(name)}: expected a name starting with ${Object.keys(modules).map((m) => `${m}-`).join(', ')}.`)
}
const { builders, listen } = await import(`./variants/${framework}.mjs`)
if (!(name in builders)) {
  throw new Error(`Unknown variant ${JSON.stringify(name)}; expected one of ${Object.keys(builders).join(', ')}.`)
}
const port = await listen(builders[name])

process.on('message', function answer (message) {
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage()
    process.send({ cpu: user + system })
    return
  }
  if (message === 'pid') {
    process.send({ pid: process.pid })
    return
  }
  if (message !== 'heap') return
  if (typeof globalThis.gc !== 'function') throw new Error('Start the server with --expose-gc to measure its heap.')
  // Twice: objects kept alive by finalisers or weak callbacks of the first
  // collection are freed only by a second.
  globalThis.gc()
  globalThis.gc()
  process.send({ heapUsed: process.memoryUsage().heapUsed })
})
process.on('disconnect', () => process.exit(0))
process.send({ port })
