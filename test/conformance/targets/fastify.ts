import type http from 'node:http'
import Fastify, { type FastifyRequest } from 'fastify'
import fastifyRequestLocals from '../../../src/fastify.js'
import { currentUser, errorBody, traceOf, watchClose, type Adapter } from '../app.js'
import { portOf } from '../../helpers/http.js'

export const fastify: Adapter = fastifyOn('fastify', {})

/** The Fastify target, with these Fastify options (`{ http2: true }` …). */
export function fastifyOn (name: string, options: object): Adapter {
  return {
    name,
    async start (spec) {
      const app = Fastify(options)
      if (spec.trace !== undefined) {
        const trace = spec.trace
        app.addHook('onRequest', (request, _reply, done) => { trace.run(traceOf(request.headers), done) })
      }
      // Registered before the plugin, so it runs outside the scope.
      app.addHook('onRequest', async (request, reply) => {
        if (request.url === '/outside') return reply.send(spec.outside?.())
      })
      // scopeRawEvents: the raw request's events (a parser's chunks, a client's
      // disconnect) run in the scope, as they do in the node:http adapters.
      await app.register(fastifyRequestLocals, { defaults: spec.defaults as never, scopeRawEvents: true })
      app.addHook('onRequest', async (request, reply) => {
        watchClose(spec, request.raw, reply.raw)
        await spec.enter?.(request.headers)
      })
      app.addContentTypeParser('application/json', { parseAs: 'string' }, (request: FastifyRequest & { parsedIn?: string }, body, done) => {
        request.parsedIn = currentUser()
        try {
          done(null, JSON.parse(body as string))
        } catch (err) {
          done(err as Error)
        }
      })
      app.setErrorHandler(async (err, _request, reply) => reply.code(500).send(errorBody(spec, err)))
      const route = async (request: FastifyRequest & { parsedIn?: string }) =>
        spec.handle({ headers: request.headers, body: request.body ?? null, parsedIn: request.parsedIn ?? 'unparsed' })
      app.get('/', route)
      app.post('/', route)
      await app.listen({ port: 0, host: '127.0.0.1' })
      return { port: portOf(app.server as http.Server), close: () => app.close() }
    }
  }
}
