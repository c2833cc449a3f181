import http from 'node:http'
import type { AddressInfo } from 'node:net'

/** A keep-alive agent, so many requests share few sockets as in production. */
export function keepAliveAgent (maxSockets = 64): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets })
}

export function portOf (server: http.Server): number {
  return (server.address() as AddressInfo).port
}

export interface SendOptions {
  port: number
  method?: string
  path?: string
  headers?: Record<string, string>
  /** The body, written in `chunks` pieces with a pause after each. */
  body?: string
  chunks?: number
  pause?: () => Promise<void>
  agent?: http.Agent
}

export interface Received {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json: <T = unknown>() => T
}

/** One request over a real socket; resolves with the whole response. */
export function send (options: SendOptions): Promise<Received> {
  const { port, method = 'GET', path = '/', headers = {}, body, chunks = 1, pause, agent } = options
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method, path, headers, agent }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body === undefined) {
      req.end()
      return
    }
    void writeInChunks(req, body, chunks, pause).catch(reject)
  })
}

async function writeInChunks (req: http.ClientRequest, body: string, chunks: number, pause?: () => Promise<void>): Promise<void> {
  const size = Math.ceil(body.length / chunks)
  for (let i = 0; i < body.length; i += size) {
    req.write(body.slice(i, i + size))
    if (pause !== undefined) await pause()
  }
  req.end()
}

/** Resolves once `count` callers have arrived, releasing them all together. */
export class Barrier {
  #waiting: Array<() => void> = []
  readonly #count: number

  constructor (count: number) {
    this.#count = count
  }

  arrive (): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve)
      if (this.#waiting.length >= this.#count) {
        for (const release of this.#waiting.splice(0)) release()
      }
    })
  }
}

/** A promise with its resolve function outside, for waiting on events without sleeping. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

/**
 * Starts a POST announcing a 100-byte body and sends only part of it, so the
 * server's requestTimeout fires; resolves with the status it answers (408).
 */
export function sendIncompleteBody (port: number, id: string): Promise<number> {
  return new Promise((resolve) => {
    const client = http.request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-id': id, 'content-type': 'text/plain', 'content-length': '100' } })
    client.on('error', () => {})
    client.on('response', (res) => { res.resume(); resolve(res.statusCode!) })
    client.write('never finished')
  })
}
