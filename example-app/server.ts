import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { openDatabase } from './db/database.js'
import { useDatabase } from './db/transaction.js'
import { buildExpressApp } from './http/express-app.js'
import { buildFastifyApp } from './http/fastify-app.js'
import { rootLogger } from './log.js'

// `npm start` runs the Fastify server; `npm run start:express` the Express
// one (EXAMPLE_SERVER=express). PORT=0 picks a free port.
const which = process.env.EXAMPLE_SERVER === 'express' ? 'express' : 'fastify'
const port = Number(process.env.PORT ?? 3000)
const host = '127.0.0.1'

const db = await openDatabase()
useDatabase(db)
rootLogger.info({ database: db.description, server: which }, 'database ready')

let address: AddressInfo
let close: () => Promise<void>
if (which === 'fastify') {
  const app = await buildFastifyApp()
  await app.listen({ port, host })
  address = app.server.address() as AddressInfo
  close = () => app.close()
} else {
  const server = buildExpressApp().listen(port, host)
  await once(server, 'listening')
  address = server.address() as AddressInfo
  close = () => new Promise((resolve) => server.close(() => resolve()))
  rootLogger.info(`Server listening at http://${host}:${address.port}`)
}

const url = `http://${host}:${address.port}`
rootLogger.info({ url }, 'notes API ready')
process.stderr.write(`
request-locals example: notes API (${which}, ${db.description}) at ${url}
Try:
  curl -s -X POST ${url}/notes -H 'Authorization: Bearer alice-token' -H 'content-type: application/json' -d '{"title":"first note","tags":["hello"]}'
  curl -s ${url}/notes -H 'Authorization: Bearer alice-token'

`)

async function shutdown (): Promise<void> {
  await close()
  await db.close()
  process.exit(0)
}
process.once('SIGINT', () => { void shutdown() })
process.once('SIGTERM', () => { void shutdown() })
