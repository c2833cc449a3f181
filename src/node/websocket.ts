import type { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import { emitInStore } from '../core/emitter.js'
import type { LocalsStorage } from '../core/storage.js'

// A websocket outlives the request that opened it, and its events ('message',
// 'close', 'ping' …) are emitted from the TCP socket's data events, whose
// async context is the connection's, not the request's. @fastify/websocket
// emits 'connection' on its server from inside the route handler, in the
// request's scope; that is the one moment where the websocket and the
// request's store meet, so the websocket's emit is made to re-enter that
// store there. Per websocket, not per request: plain HTTP requests pay
// nothing.

type WithWebsocketServer = FastifyInstance & { websocketServer?: EventEmitter }

/**
 * Once the app is ready, makes every websocket that `@fastify/websocket`
 * opens emit its events in the scope of the request that opened it. Does
 * nothing when that plugin is not registered at the root.
 */
export function scopeWebsocketConnections (fastify: FastifyInstance, storage: LocalsStorage): void {
  fastify.addHook('onReady', function scopeWebsocketsOnReady (this: WithWebsocketServer, done: (err?: Error) => void) {
    this.websocketServer?.on('connection', function enterRequestScopeForWebsocket (socket: EventEmitter) {
      const store = storage.getStore()
      if (store !== undefined) emitInStore(socket, storage, store)
    })
    done()
  })
}
