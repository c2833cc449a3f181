import http, { type IncomingHttpHeaders } from 'node:http'
import http2 from 'node:http2'
import { listen, type Adapter } from '../app.js'
import { portOf } from '../../helpers/http.js'
import { fastifyOn } from './fastify.js'
import { nodeHandler } from './node-http.js'

// HTTP/2 targets. The cases speak HTTP/1 (their client is node:http), so an
// HTTP/2 server is reached through a gateway in front of it that forwards
// each HTTP/1 request as a stream over a few HTTP/2 sessions, body chunks as
// they arrive, and resets the stream (RST_STREAM) when its HTTP/1 client goes
// away. Everything the cases check happens on the HTTP/2 server.
const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'host', 'te'])

function forwardable (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name) && !name.startsWith(':')))
}

async function throughHttp2Gateway (h2Port: number, closeTarget: () => Promise<void>): Promise<{ port: number, close: () => Promise<void> }> {
  const sessions = await Promise.all(Array.from({ length: 4 }, () => new Promise<http2.ClientHttp2Session>((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${h2Port}`)
    session.once('connect', () => resolve(session))
    session.once('error', reject)
  })))
  let next = 0
  const gateway = http.createServer((req, res) => {
    const stream = sessions[next++ % sessions.length].request({ ':method': req.method, ':path': req.url, ...forwardable(req.headers) }, { endStream: false })
    stream.on('error', () => { res.destroy() })
    stream.on('response', (headers) => {
      res.writeHead(Number(headers[':status']), forwardable(headers))
      stream.pipe(res)
    })
    req.pipe(stream)
    res.on('close', () => { if (!res.writableFinished && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL) })
  })
  const { port, close } = await listen(gateway)
  return {
    port,
    close: async () => {
      await close()
      for (const session of sessions) session.destroy()
      await closeTarget()
    }
  }
}

function listenHttp2 (server: http2.Http2Server): Promise<{ port: number, close: () => Promise<void> }> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: portOf(server as unknown as http.Server),
      close: () => new Promise<void>((resolve) => { server.close(() => resolve()) })
    }))
  })
}

export const nodeHttp2: Adapter = {
  name: 'node:http2',
  async start (spec) {
    const target = await listenHttp2(http2.createServer(nodeHandler(spec) as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void))
    return throughHttp2Gateway(target.port, target.close)
  }
}

export const fastifyHttp2: Adapter = {
  name: 'fastify (HTTP/2)',
  async start (spec) {
    const target = await fastifyOn('fastify (HTTP/2)', { http2: true }).start(spec)
    return throughHttp2Gateway(target.port, target.close)
  }
}
