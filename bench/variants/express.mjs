// The Express variants: the same three routes as the Fastify ones, behind
// express.json() for the POST body. `express-…` variants run Express 5,
// `express4-…` ones Express 4 (the same builders on the other major).
import { AsyncLocalStorage } from 'node:async_hooks'
import express5 from 'express'
import express4 from 'express4'
import { currentUser, step } from '../scenarios.mjs'

let express = express5

function ack (body) {
  return { received: body.items.length }
}

function app () {
  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')
  return app
}

async function bare () {
  const server = app()
  server.use(express.json())
  async function service (user, tenant, requestId) {
    await step(1)
    await step(2)
    return { user: user.id, tenant, requestId }
  }
  server.get('/small', (_req, res) => { res.json({ hello: 'world' }) })
  server.get('/locals', async (_req, res) => { res.json(await service(currentUser(), 'public', 'r1')) })
  server.post('/body', (req, res) => { res.json(ack(req.body)) })
  return server
}

async function requestLocals () {
  const { expressRequestLocals } = await import('request-locals/express')
  const { requestLocal } = await import('request-locals')
  const server = app()
  server.use(expressRequestLocals())
  server.use(express.json())
  async function service () {
    await step(1)
    await step(2)
    return { user: requestLocal.user.id, tenant: requestLocal.tenant, requestId: requestLocal.requestId }
  }
  server.get('/small', (_req, res) => { res.json({ hello: 'world' }) })
  server.get('/locals', async (_req, res) => {
    requestLocal.user = currentUser()
    requestLocal.tenant = 'public'
    requestLocal.requestId = 'r1'
    res.json(await service())
  })
  server.post('/body', (req, res) => { res.json(ack(req.body)) })
  return server
}

// As requestLocals, through the store tryGetLocals() returns (hot code's
// read): the difference between the two is what the proxy costs.
async function requestLocalsStore () {
  const { expressRequestLocals } = await import('request-locals/express')
  const { tryGetLocals } = await import('request-locals')
  const server = app()
  server.use(expressRequestLocals())
  server.use(express.json())
  async function service () {
    await step(1)
    await step(2)
    const locals = tryGetLocals()
    return { user: locals.user.id, tenant: locals.tenant, requestId: locals.requestId }
  }
  server.get('/small', (_req, res) => { res.json({ hello: 'world' }) })
  server.get('/locals', async (_req, res) => {
    const locals = tryGetLocals()
    locals.user = currentUser()
    locals.tenant = 'public'
    locals.requestId = 'r1'
    res.json(await service())
  })
  server.post('/body', (req, res) => { res.json(ack(req.body)) })
  return server
}

async function expressHttpContext () {
  const { default: httpContext } = await import('express-http-context')
  const server = app()
  server.use(httpContext.middleware)
  server.use(express.json())
  async function service () {
    await step(1)
    await step(2)
    return { user: httpContext.get('user').id, tenant: httpContext.get('tenant'), requestId: httpContext.get('requestId') }
  }
  server.get('/small', (_req, res) => { res.json({ hello: 'world' }) })
  server.get('/locals', async (_req, res) => {
    httpContext.set('user', currentUser())
    httpContext.set('tenant', 'public')
    httpContext.set('requestId', 'r1')
    res.json(await service())
  })
  server.post('/body', (req, res) => { res.json(ack(req.body)) })
  return server
}

// cls-rtracer holds one value per request, the id it generates: its locals
// scenario reads that id three times and writes nothing.
async function clsRtracer () {
  const { default: rTracer } = await import('cls-rtracer')
  const server = app()
  server.use(rTracer.expressMiddleware())
  server.use(express.json())
  async function service () {
    await step(1)
    await step(2)
    return { user: rTracer.id(), tenant: rTracer.id(), requestId: rTracer.id() }
  }
  server.get('/small', (_req, res) => { res.json({ hello: 'world' }) })
  server.get('/locals', async (_req, res) => { res.json(await service()) })
  server.post('/body', (req, res) => { res.json(ack(req.body)) })
  return server
}

// The floor any AsyncLocalStorage design can reach: one run() per request in
// the first middleware, a plain object as the store, no checks.
async function handRolled () {
  const als = new AsyncLocalStorage()
  const server = app()
  server.use(function openScope (_req, _res, next) { als.run({}, next) })
  server.use(express.json())
  async function service () {
    await step(1)
    await step(2)
    const store = als.getStore()
    return { user: store.user.id, tenant: store.tenant, requestId: store.requestId }
  }
  server.get('/small', (_req, res) => { res.json({ hello: 'world' }) })
  server.get('/locals', async (_req, res) => {
    const store = als.getStore()
    store.user = currentUser()
    store.tenant = 'public'
    store.requestId = 'r1'
    res.json(await service())
  })
  server.post('/body', (req, res) => { res.json(ack(req.body)) })
  return server
}

export async function listen (build) {
  const server = await build()
  return new Promise((resolve, reject) => {
    const listener = server.listen(0, '127.0.0.1', (err) => {
      if (err) reject(err)
      else resolve(listener.address().port)
    })
  })
}

const onExpress4 = (build) => () => {
  express = express4
  return build()
}

export const builders = {
  'express-bare': bare,
  'express-hand-rolled-als': handRolled,
  'express-request-locals': requestLocals,
  'express-request-locals-store': requestLocalsStore,
  'express-http-context': expressHttpContext,
  'express-cls-rtracer': clsRtracer,
  'express4-bare': onExpress4(bare),
  'express4-hand-rolled-als': onExpress4(handRolled),
  'express4-request-locals': onExpress4(requestLocals),
  'express4-http-context': onExpress4(expressHttpContext)
}
