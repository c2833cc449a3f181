// Heap retention: a server's heap after warm-up, then after `amount` more
// requests of the locals scenario (which writes a fresh object into every
// request's store), each read after forced GCs. A store kept alive per
// finished request would show as growth proportional to `amount`.
import { drive } from './load.mjs'
import { startServer } from './processes.mjs'

const warmupRequests = 20000

export async function measureHeap (node, variant, scenario, { amount, connections }) {
  const server = await startServer(node, variant, ['--expose-gc'])
  try {
    await drive(server.port, scenario, { amount: Math.min(warmupRequests, amount), connections })
    const afterWarmup = await server.heapUsed()
    await drive(server.port, scenario, { amount, connections })
    const afterLoad = await server.heapUsed()
    return { afterWarmup, afterLoad, perRequest: (afterLoad - afterWarmup) / amount }
  } finally {
    await server.stop()
  }
}
