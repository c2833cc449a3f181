// The soak's Fastify server: the plugin opens each request's scope; an
// onRequest hook sets the user from the request's header (as authentication
// would); routes call the shared service, which reads the user back.
import { readFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import Fastify from 'fastify'
import { fastifyRequestLocals } from 'request-locals/fastify'
import { counters, identify, readUser, streamWhoAmI, whoAmI } from './service.mjs'

function userOf (request) {
  return request.headers['x-soak-user']
}

// The tests' self-signed certificate for localhost: --transport h2 serves
// HTTP/2 over TLS, as browsers and most clients speak it.
const tls = () => ({
  key: readFileSync(new URL('../test/fixtures/tls/localhost-key.pem', import.meta.url)),
  cert: readFileSync(new URL('../test/fixtures/tls/localhost-cert.pem', import.meta.url))
})

export async function build ({ transport = 'h1' } = {}) {
  // Bodies arrive in several chunks with pauses between them; the default
  // limits are kept, only the logger is off.
  const app = Fastify({ logger: false, ...(transport === 'h2' ? { http2: true, https: tls() } : {}) })
  await app.register(fastifyRequestLocals)

  app.addHook('onRequest', async function identifyUser (request) {
    await identify(userOf(request))
  })
  // Runs once the whole (chunked) body has been read and parsed.
  app.addHook('preValidation', async function readAfterBody (request) {
    request.afterBody = readUser(userOf(request))
  })
  // Hooks run after the answer and when the client goes away: what they
  // read is checked by the server's counters only.
  app.addHook('onResponse', async function readAfterResponse (request) {
    readUser(userOf(request))
  })
  app.addHook('onRequestAbort', async function readOnAbort (request) {
    readUser(userOf(request))
  })
  app.addHook('onError', async function countError (request, _reply, error) {
    // A client that went away mid-body makes the body parser fail: that is
    // the abort the soak asked for, not a server error.
    // Over HTTP/2, undici ends an abandoned body's stream instead of
    // resetting it: the server gets a cut-off JSON body (the soak's bodies
    // are otherwise always valid JSON).
    const cutOff = error.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || (request.raw.httpVersionMajor === 2 && error.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
    if (request.raw.destroyed || request.raw.aborted || cutOff) counters.abortErrors++
    else counters.errors++
  })

  app.get('/whoami', async function getWhoAmI (request) {
    return { afterBody: request.afterBody, ...await whoAmI(userOf(request)) }
  })
  app.post('/whoami', async function postWhoAmI (request) {
    return { body: request.body.user, afterBody: request.afterBody, ...await whoAmI(userOf(request)) }
  })
  // Returns the reply, as Fastify asks of async handlers that send a stream
  // themselves; the service keeps writing to the stream afterwards.
  app.get('/stream', async function streamedWhoAmI (request, reply) {
    const stream = new PassThrough()
    reply.type('application/json').send(stream)
    streamWhoAmI(userOf(request), {
      write: (text) => stream.write(text),
      end: (text) => stream.end(text),
      closed: () => stream.destroyed || request.raw.destroyed
    }).catch((error) => stream.destroy(error))
    return reply
  })
  return app
}

export async function listen (app) {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app.server.address().port
}
