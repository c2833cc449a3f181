import http from 'node:http'
import type { Test } from 'tap'
import express5 from 'express'
import express4 from 'express4'
import type { Express } from 'express'
import { expressRequestLocals } from '../../src/express.js'
import { withRequestLocals, type HttpRequestLocalsOptions } from '../../src/http.js'
import { portOf } from './http.js'

/** A request handler as node:http calls it (Express passes its own request and response, which extend these). */
export type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>

/** The request-id options the Express middleware and the node:http wrapper share. */
export type NodeAdapterOptions = Pick<HttpRequestLocalsOptions, 'requestId' | 'upstream' | 'logger'>

/** An adapter for node:http servers; `start` serves every path with `route` and resolves with the port. */
export interface NodeAdapter { name: string, start: (t: Test, route: Route, options: NodeAdapterOptions) => Promise<number> }

/** Listens on a free port of 127.0.0.1; the server and its connections close when `t` ends. */
export function listen (t: Test, server: http.Server): Promise<number> {
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(portOf(server))))
}

export function reply (res: http.ServerResponse, body: unknown): void {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify(body))
}

function expressAdapter (name: string, make: () => Express): NodeAdapter {
  return {
    name,
    start: (t, route, options) => {
      const app = make()
      app.use(expressRequestLocals(options))
      app.all('/', (req, res, next) => { Promise.resolve(route(req, res)).catch(next) })
      return listen(t, http.createServer(app))
    }
  }
}

/** Express 5, Express 4 and the node:http wrapper: the adapters that open a scope on node:http's request. */
export const nodeAdapters: NodeAdapter[] = [
  expressAdapter('Express 5', () => express5()),
  expressAdapter('Express 4', () => express4() as unknown as Express),
  { name: 'node:http', start: (t, route, options) => listen(t, http.createServer(withRequestLocals(route, options))) }
]
