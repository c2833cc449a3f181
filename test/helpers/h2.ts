import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'

// HTTP/2 over real sessions: cleartext (h2c) and TLS with a self-signed
// certificate for localhost, kept as a fixture so no test shells out.

const fixtures = new URL('../fixtures/tls/', import.meta.url)

/** The key and certificate a TLS HTTP/2 server of the tests serves with. */
export const tls = {
  key: readFileSync(new URL('localhost-key.pem', fixtures)),
  cert: readFileSync(new URL('localhost-cert.pem', fixtures))
}

/** Opens a client session to a server on 127.0.0.1. */
export function connect (port: number, secure: boolean): Promise<ClientHttp2Session> {
  const session = secure
    ? http2.connect(`https://localhost:${port}`, { ca: tls.cert, servername: 'localhost' })
    : http2.connect(`http://127.0.0.1:${port}`)
  return new Promise((resolve, reject) => {
    session.once('connect', () => { session.removeListener('error', reject); resolve(session) })
    session.once('error', reject)
  })
}

export interface H2Response {
  status: number
  headers: IncomingHttpHeaders
  text: string
}

/** One stream on `session`; resolves with the whole response. */
export function request (session: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': '/', ...headers }, { endStream: body === undefined })
    let response: IncomingHttpHeaders = {}
    let text = ''
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { response = headers })
    stream.on('data', (chunk: string) => { text += chunk })
    stream.on('end', () => resolve({ status: Number(response[':status']), headers: response, text }))
    stream.on('error', reject)
    if (body !== undefined) stream.end(body)
  })
}

export function portOf (server: { address: () => AddressInfo | string | null }): number {
  return (server.address() as AddressInfo).port
}
