import type { AsyncLocalStorage } from 'node:async_hooks'
import type http from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { tryGetLocals } from '../../src/index.js'
import { portOf } from '../helpers/http.js'
import '../helpers/locals.js'

// Every adapter serves the same small application, described by an AppSpec,
// in its framework's own idiom: the conformance cases only ever see the spec
// and the HTTP traffic, so one case checks every adapter.

/** What the handler is given. */
export interface RequestInfo {
  headers: IncomingHttpHeaders
  /** The JSON body, parsed by the adapter's idiomatic body parser, or null. */
  body: unknown
  /** The user id the body parser saw when the body's last chunk arrived ('none' outside a scope). */
  parsedIn: string
}

/** The application every adapter serves. */
export interface AppSpec {
  /** Passed through as the adapter's `defaults` option. */
  defaults?: object | ((request: { headers: IncomingHttpHeaders }) => object)
  /** Runs in scope before the body is read, like authentication middleware. */
  enter?: (headers: IncomingHttpHeaders) => void | Promise<void>
  /** The route at `/`: may throw synchronously or return a promise that rejects. */
  handle: (request: RequestInfo) => unknown
  /** The framework's error path: its result is sent with status 500. */
  onError?: (err: unknown) => unknown
  /** The response closed; `finished` is false when the client went away first. */
  onClose?: (headers: IncomingHttpHeaders, finished: boolean) => void
  /** Served at `/outside` by a route the adapter does not cover. */
  outside?: () => unknown
  /** Another library's context, opened for each request before the adapter. */
  trace?: AsyncLocalStorage<string>
}

export interface Adapter {
  name: string
  /** Starts the spec's app on 127.0.0.1, port 0; resolves with a closer. */
  start: (spec: AppSpec) => Promise<{ port: number, close: () => Promise<void> }>
}

/** The current user's id, or 'none' outside a scope: what the cases compare. */
export function currentUser (): string {
  return tryGetLocals()?.user?.id ?? 'none'
}

export const traceOf = (headers: IncomingHttpHeaders): string => `trace-${String(headers['x-user'])}`

export function errorBody (spec: AppSpec, err: unknown): unknown {
  return spec.onError === undefined ? { message: (err as Error).message } : spec.onError(err)
}

export function listen (server: http.Server): Promise<{ port: number, close: () => Promise<void> }> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: portOf(server),
      close: () => new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
    }))
  })
}

// The parse point of the plain adapters: a reader of the request stream's own
// events, as every body parser is underneath.
export function recordParsedIn (req: IncomingMessage & { parsedIn?: string }): void {
  req.on('end', function recordScopeAtEnd () { req.parsedIn = currentUser() })
}

export function watchClose (spec: AppSpec, req: IncomingMessage, res: ServerResponse): void {
  if (spec.onClose === undefined) return
  const onClose = spec.onClose
  // writableEnded too: an HTTP/2 response reports writableFinished once its
  // stream closed, even when the client reset it.
  res.on('close', () => onClose(req.headers, res.writableEnded && res.writableFinished))
}
