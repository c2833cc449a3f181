import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRequestLocals from 'request-locals/fastify'
import { requestLocal } from 'request-locals'
import { greet } from './services/greeting.js'
import './locals.js'

const users: Record<string, string> = { alice: 'Alice', bob: 'Bob' }

export async function buildApp (): Promise<FastifyInstance> {
  const app = Fastify({ logger: process.env.NODE_ENV !== 'test' })
  await app.register(fastifyRequestLocals)

  // Authentication sets the user once; everything downstream reads it.
  app.addHook('onRequest', async (request) => {
    const id = request.headers['x-user']
    if (typeof id === 'string' && id in users) requestLocal.user = { id, name: users[id] }
  })

  app.get('/hello', async () => greet())
  return app
}
