// One soak run: one server (Fastify or Express) on one Node binary, driven
// with `requests` requests, its counters and heap read at the end.
import { fileURLToPath } from 'node:url'
import { startServer } from '../bench/processes.mjs'
import { Load } from './load.mjs'

const serverScript = fileURLToPath(new URL('./server.mjs', import.meta.url))

// Asks the server over IPC; rejects instead of waiting forever if it has died.
function ask (server, question, answer) {
  return Promise.race([
    server.ask(question, answer),
    server.exited.then((code) => { throw new Error(`the server exited (code ${code}) while the soak was asking it for ${question}`) })
  ])
}

/**
 * Runs the soak against `framework` on `node` ({ bin, version }); resolves
 * with its figures. `report(sent)` hears how many requests have been sent.
 */
export async function soakOne (node, framework, options, report = () => {}) {
  // Not pinned: the runs of both servers share the machine's cores, and the
  // soak checks isolation, not speed.
  const server = await startServer(node.bin, framework, ['--expose-gc'], { script: serverScript, args: [String(options.seed), String(options.maxDelay), options.transport], pin: false })
  let crashed
  server.exited.then((code) => { crashed ??= `exited with code ${code}` })
  const load = new Load({ port: server.port, connections: options.connections, seed: options.seed, tag: `${framework}-${node.version}`, maxDelay: options.maxDelay, abortShare: options.abortShare, transport: options.transport, sessions: options.sessions })
  const tally = load.tally
  let driving = 0
  // Progress (a terminal only): requests sent so far, every second.
  const progress = setInterval(() => report(tally.sent), 1000)
  progress.unref()
  async function drive (count) {
    const since = performance.now()
    await load.drive(count)
    driving += performance.now() - since
  }
  try {
    await drive(options.warmup)
    await ask(server, 'stats', 'stats')
    const heapBefore = await ask(server, 'heap', 'heapUsed')
    const cpuBefore = await ask(server, 'cpu', 'cpu')
    const measured = options.requests - options.warmup
    await drive(measured)
    const cpuAfter = await ask(server, 'cpu', 'cpu')
    // An HTTP/2 client may abandon a stream without resetting it (undici,
    // for a body it stopped sending): the server's stream, and so its scope,
    // stays open until the session closes. Closing the sessions first makes
    // every scope end before the resources are counted.
    if (options.transport === 'h2') await load.close()
    const stats = await ask(server, 'stats', 'stats')
    const heapAfter = await ask(server, 'heap', 'heapUsed')
    return {
      node: node.version,
      server: options.transport === 'h2' ? `${framework} (HTTP/2, ${options.sessions} sessions)` : framework,
      connections: options.connections,
      seconds: driving / 1000,
      rps: tally.sent / (driving / 1000),
      cpuPerRequest: measured > 0 ? (cpuAfter - cpuBefore) / measured : 0,
      client: { ...tally },
      counters: stats,
      heap: { before: heapBefore, after: heapAfter, delta: heapAfter - heapBefore },
      crashed
    }
  } finally {
    clearInterval(progress)
    await load.close()
    await server.stop()
  }
}

/** What makes a run fail; empty when it passed. */
export function failures (result, { heapLimitMb }) {
  const { client, counters: server, heap } = result
  const found = []
  const aborted = client.aborted.body + client.aborted.waiting + client.aborted.response
  if (result.crashed !== undefined) found.push(`the server ${result.crashed}`)
  if (client.mismatches + server.mismatches > 0) found.push(`${client.mismatches} mismatches in answers, ${server.mismatches} in server reads`)
  if (client.losses + server.losses > 0) found.push(`${client.losses} losses in answers, ${server.losses} in server reads`)
  if (client.errors + server.errors > 0) found.push(`${client.errors} failed requests, ${server.errors} server errors`)
  if (client.verified + aborted + client.errors !== client.sent) found.push(`${client.sent} sent but ${client.verified} verified + ${aborted} aborted + ${client.errors} failed`)
  if (server.created !== server.disposed) found.push(`${server.created} resources created but ${server.disposed} disposed`)
  if (server.created !== server.scopes) found.push(`${server.scopes} scopes opened but ${server.created} resources created`)
  if (server.scopes < client.verified || server.scopes > client.sent) found.push(`${server.scopes} scopes opened for ${client.sent} requests sent, ${client.verified} answered`)
  if (server.inFlight !== 0) found.push(`${server.inFlight} service calls still running at the end`)
  if (heap.delta > heapLimitMb * 2 ** 20) found.push(`the heap grew by ${(heap.delta / 2 ** 20).toFixed(2)} MB (limit ${heapLimitMb} MB)`)
  return found
}
