// Heap a server keeps per idle keep-alive connection after the connection's
// one request:
//   node bench/idle-connections.mjs <variant,variant…> [connections] [node]
// Node creates a connection's keep-alive timer as its response finishes, in
// the request's async context, so whatever a request's store refers to stays
// alive while its connection idles. Each variant's server is warmed, its heap
// read after forced GCs, then `connections` keep-alive connections (default
// 400) each send one request of the locals scenario and stay open; the heap is
// read again and the difference divided by the connections. Compare a
// variant with its framework's hand-rolled one: the difference is what the
// library keeps per idle connection.
import http from 'node:http'
import { nodeCache, resolveNodes } from './cli.mjs'
import { drive } from './load.mjs'
import { startServer } from './processes.mjs'
import { scenarios } from './scenarios.mjs'

const [names = 'express-hand-rolled-als,express-request-locals', count = '400', nodeEntry = process.versions.node.split('.')[0]] = process.argv.slice(2)
const [node] = resolveNodes([nodeEntry], nodeCache)
const connections = Number(count)
const locals = scenarios.find((scenario) => scenario.name === 'locals')

function requestOnce (port, agent) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: locals.path, agent }, (res) => {
      res.resume()
      res.on('end', resolve)
    }).on('error', reject)
  })
}

async function perIdleConnection (variant) {
  const server = await startServer(node.bin, variant, ['--expose-gc'], { pin: false })
  const agents = []
  try {
    await drive(server.port, locals, { amount: 5000, connections: 4 })
    const before = await server.heapUsed()
    // One connection each, left open: well within every framework's
    // keep-alive timeout (5 s for Express and node:http).
    for (let i = 0; i < connections; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      agents.push(agent)
      await requestOnce(server.port, agent)
    }
    const after = await server.heapUsed()
    return (after - before) / connections
  } finally {
    for (const agent of agents) agent.destroy()
    await server.stop()
  }
}

for (const variant of names.split(',')) {
  const bytes = await perIdleConnection(variant)
  process.stdout.write(`${node.version} ${variant}: ${Math.round(bytes)} bytes per idle connection (${connections} connections)\n`)
}
