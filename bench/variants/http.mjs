// The node:http variants: the same three routes on a plain http.Server,
// routed by method and path, the body read and parsed by hand.
import { AsyncLocalStorage } from 'node:async_hooks'
import http from 'node:http'
import { currentUser, step } from '../scenarios.mjs'

function json (res, value) {
  const body = JSON.stringify(value)
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function readJson (req, done) {
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', () => done(JSON.parse(Buffer.concat(chunks).toString('utf8'))))
}

/** One handler serving the three routes; `locals` is the scenario's route, given the response. */
function routes (locals) {
  return function handle (req, res) {
    if (req.url === '/small') return json(res, { hello: 'world' })
    if (req.url === '/locals') {
      locals(res)
      return
    }
    if (req.url === '/body' && req.method === 'POST') return readJson(req, (body) => json(res, { received: body.items.length }))
    res.writeHead(404).end()
  }
}

async function bare () {
  async function service (user, tenant, requestId) {
    await step(1)
    await step(2)
    return { user: user.id, tenant, requestId }
  }
  return http.createServer(routes(async (res) => json(res, await service(currentUser(), 'public', 'r1'))))
}

// The floor: one run() per request around the handler.
async function handRolled () {
  const als = new AsyncLocalStorage()
  async function service () {
    await step(1)
    await step(2)
    const store = als.getStore()
    return { user: store.user.id, tenant: store.tenant, requestId: store.requestId }
  }
  const handle = routes(async (res) => {
    const store = als.getStore()
    store.user = currentUser()
    store.tenant = 'public'
    store.requestId = 'r1'
    json(res, await service())
  })
  return http.createServer((req, res) => als.run({}, handle, req, res))
}

async function requestLocals () {
  const { withRequestLocals } = await import('request-locals/http')
  const { requestLocal } = await import('request-locals')
  async function service () {
    await step(1)
    await step(2)
    return { user: requestLocal.user.id, tenant: requestLocal.tenant, requestId: requestLocal.requestId }
  }
  return http.createServer(withRequestLocals(routes(async (res) => {
    requestLocal.user = currentUser()
    requestLocal.tenant = 'public'
    requestLocal.requestId = 'r1'
    json(res, await service())
  })))
}

// As requestLocals, through the store tryGetLocals() returns (hot code's
// read): the difference between the two is what the proxy costs.
async function requestLocalsStore () {
  const { withRequestLocals } = await import('request-locals/http')
  const { tryGetLocals } = await import('request-locals')
  async function service () {
    await step(1)
    await step(2)
    const locals = tryGetLocals()
    return { user: locals.user.id, tenant: locals.tenant, requestId: locals.requestId }
  }
  return http.createServer(withRequestLocals(routes(async (res) => {
    const locals = tryGetLocals()
    locals.user = currentUser()
    locals.tenant = 'public'
    locals.requestId = 'r1'
    json(res, await service())
  })))
}

export async function listen (build) {
  const server = await build()
  server.keepAliveTimeout = 60000
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
}

export const builders = {
  'http-bare': bare,
  'http-hand-rolled-als': handRolled,
  'http-request-locals': requestLocals,
  'http-request-locals-store': requestLocalsStore
}
