// The Fastify variants: the same three routes, each written the way that
// library's documentation says to use it. Every builder returns an app that
// is ready to listen.
import { AsyncLocalStorage } from 'node:async_hooks'
import Fastify from 'fastify'
import { currentUser, step } from '../scenarios.mjs'

function ack (body) {
  return { received: body.items.length }
}

async function bare () {
  const app = Fastify()
  async function service (user, tenant, requestId) {
    await step(1)
    await step(2)
    return { user: user.id, tenant, requestId }
  }
  app.get('/small', async () => ({ hello: 'world' }))
  app.get('/locals', async (request) => service(currentUser(), 'public', request.id))
  app.post('/body', async (request) => ack(request.body))
  return app
}

async function requestLocals () {
  const { fastifyRequestLocals } = await import('request-locals/fastify')
  const { requestLocal } = await import('request-locals')
  const app = Fastify()
  await app.register(fastifyRequestLocals)
  async function service () {
    await step(1)
    await step(2)
    return { user: requestLocal.user.id, tenant: requestLocal.tenant, requestId: requestLocal.requestId }
  }
  app.get('/small', async () => ({ hello: 'world' }))
  app.get('/locals', async (request) => {
    requestLocal.user = currentUser()
    requestLocal.tenant = 'public'
    requestLocal.requestId = request.id
    return service()
  })
  app.post('/body', async (request) => ack(request.body))
  return app
}

// The same app reading and writing the store that tryGetLocals() returns,
// as hot code does: what the requestLocal proxy itself costs is the
// difference from the variant above.
async function requestLocalsStore () {
  const { fastifyRequestLocals } = await import('request-locals/fastify')
  const { tryGetLocals } = await import('request-locals')
  const app = Fastify()
  await app.register(fastifyRequestLocals)
  async function service () {
    await step(1)
    await step(2)
    const locals = tryGetLocals()
    return { user: locals.user.id, tenant: locals.tenant, requestId: locals.requestId }
  }
  app.get('/small', async () => ({ hello: 'world' }))
  app.get('/locals', async (request) => {
    const locals = tryGetLocals()
    locals.user = currentUser()
    locals.tenant = 'public'
    locals.requestId = request.id
    return service()
  })
  app.post('/body', async (request) => ack(request.body))
  return app
}

async function fastifyRequestContext () {
  const { fastifyRequestContext, requestContext } = await import('@fastify/request-context')
  const app = Fastify()
  await app.register(fastifyRequestContext)
  async function service () {
    await step(1)
    await step(2)
    return { user: requestContext.get('user').id, tenant: requestContext.get('tenant'), requestId: requestContext.get('requestId') }
  }
  app.get('/small', async () => ({ hello: 'world' }))
  app.get('/locals', async (request) => {
    requestContext.set('user', currentUser())
    requestContext.set('tenant', 'public')
    requestContext.set('requestId', request.id)
    return service()
  })
  app.post('/body', async (request) => ack(request.body))
  return app
}

// cls-rtracer holds one value per request, the id it generates: its locals
// scenario reads that id three times and writes nothing.
async function clsRtracer () {
  const { default: rTracer } = await import('cls-rtracer')
  const app = Fastify()
  await app.register(rTracer.fastifyPlugin)
  async function service () {
    await step(1)
    await step(2)
    return { user: rTracer.id(), tenant: rTracer.id(), requestId: rTracer.id() }
  }
  app.get('/small', async () => ({ hello: 'world' }))
  app.get('/locals', async () => service())
  app.post('/body', async (request) => ack(request.body))
  return app
}

// The floor any AsyncLocalStorage design can reach: one run() per request in
// the first onRequest hook, a plain object as the store, no checks.
async function handRolled () {
  const als = new AsyncLocalStorage()
  const app = Fastify()
  app.addHook('onRequest', function openScope (_request, _reply, done) {
    als.run({}, done)
  })
  async function service () {
    await step(1)
    await step(2)
    const store = als.getStore()
    return { user: store.user.id, tenant: store.tenant, requestId: store.requestId }
  }
  app.get('/small', async () => ({ hello: 'world' }))
  app.get('/locals', async (request) => {
    const store = als.getStore()
    store.user = currentUser()
    store.tenant = 'public'
    store.requestId = request.id
    return service()
  })
  app.post('/body', async (request) => ack(request.body))
  return app
}

export async function listen (build) {
  const app = await build()
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app.server.address().port
}

export const builders = {
  'fastify-bare': bare,
  'fastify-request-locals': requestLocals,
  'fastify-request-locals-store': requestLocalsStore,
  'fastify-request-context': fastifyRequestContext,
  'fastify-cls-rtracer': clsRtracer,
  'fastify-hand-rolled-als': handRolled
}
