import { buildApp } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const app = await buildApp()
await app.listen({ port, host: '127.0.0.1' })
console.log(`
request-locals example app listening on http://127.0.0.1:${port}
Try:
  curl -i http://127.0.0.1:${port}/hello -H 'x-user: alice' -H 'x-request-id: demo-1'
  curl http://127.0.0.1:${port}/hello
`)
