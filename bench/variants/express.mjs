// The Express variants (Express 5): the same three routes as the Fastify
// ones, behind express.json() for the POST body.
import express from 'express'
import { currentUser, step } from '../scenarios.mjs'

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

export async function listen (build) {
  const server = await build()
  return new Promise((resolve, reject) => {
    const listener = server.listen(0, '127.0.0.1', (err) => {
      if (err) reject(err)
      else resolve(listener.address().port)
    })
  })
}

export const builders = {
  'express-bare': bare,
  'express-request-locals': requestLocals,
  'express-http-context': expressHttpContext,
  'express-cls-rtracer': clsRtracer
}
