import t from 'tap'
import { AsyncLocalStorage } from 'node:async_hooks'
import { EventEmitter } from 'node:events'
import http from 'node:http'
import { Readable } from 'node:stream'
import fastifyWebsocket from '@fastify/websocket'
import WebSocket from 'ws'
import { bindEmitter, requestLocal } from '../../src/index.js'
import { Barrier, deferred, keepAliveAgent, portOf } from '../helpers/http.js'
import { jitter } from '../helpers/pools.js'
import { appWithUsers, seenUser } from '../helpers/users.js'
import '../helpers/locals.js'

// Websockets, server-sent events and hijacked responses outlive the request
// that opened them; their events come from the socket, in the connection's
// async context. These tests run many of them at once, each with its own
// user, and check what every event saw.

const USERS = Array.from({ length: 8 }, (_, i) => `user-${i}`)

t.test('websocket message and close handlers see the store of the request that opened the connection', async (t) => {
  const app = await appWithUsers(t, async (app) => { await app.register(fastifyWebsocket) })
  // Another library's context, set per chunk of data on the raw socket (as a
  // tracer would): the plugin must add the request's store, not replace it.
  const tracer = new AsyncLocalStorage<string>()
  const rawSocketSaw: string[] = []
  const closed = new Map(USERS.map((user) => [user, deferred<string>()]))

  app.get('/ws', { websocket: true }, (socket, request) => {
    const raw: EventEmitter = request.raw.socket
    const emit = raw.emit
    let chunk = 0
    raw.emit = function traced (this: EventEmitter, event: string | symbol, ...args: unknown[]) {
      if (event === 'data') rawSocketSaw.push(seenUser())
      return tracer.run(`chunk-${++chunk}`, () => emit.call(this, event, ...args))
    }
    socket.on('message', async (message) => {
      const trace = tracer.getStore()
      await jitter()
      socket.send(`${String(message)} seen by ${seenUser()} in ${trace}`)
    })
    socket.on('close', () => closed.get(requestLocal.user!.id)?.resolve(seenUser()))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })

  const barrier = new Barrier(USERS.length)
  const replies = await Promise.all(USERS.map(async (user) => {
    const client = new WebSocket(`ws://127.0.0.1:${portOf(app.server)}/ws`, { headers: { 'x-user': user } })
    await new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) })
    await barrier.arrive()
    const got: string[] = []
    const all = deferred()
    client.on('message', (data) => { got.push(String(data)); if (got.length === 3) all.resolve() })
    for (const n of [1, 2, 3]) {
      client.send(`${user} #${n}`)
      await jitter()
    }
    await all.promise
    client.close()
    // Which chunk carried a message depends on how TCP split the writes.
    return got.map((reply) => reply.replace(/chunk-\d+$/, 'chunk-N')).sort()
  }))

  t.same(replies, USERS.map((user) => [1, 2, 3].map((n) => `${user} #${n} seen by ${user} in chunk-N`)),
    'every message saw its own connection\'s user, and the tracer\'s context of its own chunk')
  t.same(await Promise.all(USERS.map((user) => closed.get(user)!.promise)), USERS, 'close handlers too')
  t.ok(rawSocketSaw.length >= USERS.length * 3 && rawSocketSaw.every((seen) => seen === '(no scope)'),
    'the raw socket\'s events themselves run outside the scope: that is the loss the plugin repairs')
})

t.test('server-sent events over a hijacked response keep the scope for the stream; the disconnect needs bindEmitter or scopeRawEvents', async (t) => {
  const app = await appWithUsers(t, async (app) => { await app.register(fastifyWebsocket) })
  const disconnects = new Map(USERS.map((user) => [user, deferred<{ unbound: string, bound: string }>()]))
  app.get('/events', (request, reply) => {
    const user = requestLocal.user!.id
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    const seen = { unbound: '', bound: '' }
    // Node emits 'close' from the socket: a plain listener runs outside the
    // scope (unless the plugin's scopeRawEvents is on), a listener of a bound
    // emitter inside it.
    request.raw.on('close', () => { seen.unbound = seenUser() })
    bindEmitter(reply.raw).on('close', () => {
      seen.bound = seenUser()
      clearInterval(timer)
      disconnects.get(user)!.resolve(seen)
    })
    let n = 0
    const timer = setInterval(() => {
      // Timers started by the handler keep the scope for the life of the stream.
      reply.raw.write(`id: ${++n}\ndata: ${seenUser()}\n\n`, () => { if (seenUser() !== user) reply.raw.write('data: write callback lost the scope\n\n') })
    }, 1)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })

  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())
  const streams = await Promise.all(USERS.map((user) => new Promise<string[]>((resolve, reject) => {
    const req = http.get({ port: portOf(app.server), host: '127.0.0.1', path: '/events', agent, headers: { 'x-user': user } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
        const events = text.split('\n\n').filter((event) => event.includes('data: '))
        if (events.length >= 5) {
          req.destroy()
          resolve(events.slice(0, 5).map((event) => event.split('data: ')[1]))
        }
      })
    })
    req.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'ECONNRESET') reject(err) })
  })))
  t.same(streams, USERS.map((user) => Array(5).fill(user)), 'every event of every stream saw its own user')
  t.same(await Promise.all(USERS.map((user) => disconnects.get(user)!.promise)), USERS.map((user) => ({ unbound: '(no scope)', bound: user })),
    'the disconnect lost the scope in a plain listener and kept it with bindEmitter')
})

t.test('a streamed response reads the scope each time the client pulls more', async (t) => {
  const app = await appWithUsers(t, async (app) => { await app.register(fastifyWebsocket) })
  app.get('/stream', async () => Readable.from((async function * () {
    for (let i = 0; i < 4; i++) {
      await jitter()
      yield `${seenUser()}\n`.padEnd(64 * 1024, ' ')
    }
  })()))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = keepAliveAgent()
  t.teardown(() => agent.destroy())
  const bodies = await Promise.all(USERS.map((user) => new Promise<string[]>((resolve, reject) => {
    http.get({ port: portOf(app.server), host: '127.0.0.1', path: '/stream', agent, headers: { 'x-user': user } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      // A slow reader: the server's stream resumes from the socket's 'drain'.
      res.pause()
      res.on('readable', () => { let chunk; while ((chunk = res.read(1024)) !== null) text += chunk })
      res.on('end', () => resolve(text.split('\n').map((line) => line.trim()).filter(Boolean)))
      res.on('error', reject)
    }).on('error', reject)
  })))
  t.same(bodies, USERS.map((user) => Array(4).fill(user)))
})

t.test('a websocket opened outside any request scope is left as it is', async (t) => {
  const app = await appWithUsers(t, async (app) => { await app.register(fastifyWebsocket) })
  await app.ready()
  const socket = new EventEmitter()
  app.websocketServer.emit('connection', socket)
  t.equal(socket.emit, EventEmitter.prototype.emit)
})

t.test('injectWS works with the plugin registered (no onTimeout hook without connectionTimeout)', async (t) => {
  const app = await appWithUsers(t, async (app) => { await app.register(fastifyWebsocket) })
  app.get('/ws', { websocket: true }, (socket) => {
    socket.on('message', (message) => socket.send(`${String(message)} seen by ${seenUser()}`))
  })
  await app.ready()
  const client = await app.injectWS('/ws', { headers: { 'x-user': 'u-inject' } })
  const reply = new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data))))
  client.send('hello')
  t.equal(await reply, 'hello seen by u-inject')
  client.terminate()
})
