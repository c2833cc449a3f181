// The soak's Express server: the middleware opens each request's scope,
// express.json() parses the chunked bodies after it (its verify callback
// reads the user while the body is being parsed, from the request stream's
// events), and the routes call the shared service, which reads the user back.
import http from 'node:http'
import express from 'express'
import { expressRequestLocals } from 'request-locals/express'
import { counters, identify, readUser, streamWhoAmI, whoAmI } from './service.mjs'

function userOf (req) {
  return req.headers['x-soak-user']
}

export async function build () {
  const app = express()
  app.disable('etag')
  app.disable('x-powered-by')
  app.use(expressRequestLocals())
  app.use(function identifyUser (req, res, next) {
    const user = userOf(req)
    // Listeners on the request's and the response's own events, which Node
    // emits from the socket: what they read is checked by the server's
    // counters only ('close' fires after the answer, or when the client goes away).
    req.once('close', () => readUser(user))
    res.once('finish', () => readUser(user))
    identify(user).then(() => next(), next)
  })
  app.use(express.json({
    verify: function readWhileParsing (req) {
      req.afterBody = readUser(userOf(req))
    }
  }))

  app.get('/whoami', async function getWhoAmI (req, res) {
    res.json({ afterBody: readUser(userOf(req)), ...await whoAmI(userOf(req)) })
  })
  app.post('/whoami', async function postWhoAmI (req, res) {
    res.json({ body: req.body.user, afterBody: req.afterBody, ...await whoAmI(userOf(req)) })
  })
  app.get('/stream', async function streamedWhoAmI (req, res) {
    res.setHeader('content-type', 'application/json')
    await streamWhoAmI(userOf(req), {
      write: (text) => res.write(text),
      end: (text) => res.end(text),
      closed: () => res.destroyed
    })
  })
  app.use(function countError (error, req, res, _next) {
    // A client that went away mid-body makes the body parser fail with
    // "request aborted": that is the abort the soak asked for, not a server error.
    if (error.type === 'request.aborted' || req.destroyed) counters.abortErrors++
    else counters.errors++
    if (!res.headersSent) res.status(500).json({ error: error.message })
    else res.destroy()
  })
  return http.createServer(app)
}

export function listen (server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}
