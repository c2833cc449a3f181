import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { withRequestLocals } from '../../../src/http.js'
import { errorBody, listen, recordParsedIn, traceOf, watchClose, type Adapter, type AppSpec } from '../app.js'

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(value))
}

// A plain reader of the request stream: the events, not an async iterator,
// because the events are where Node leaves the request's context.
function readJson (req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { text += chunk })
    req.on('end', () => {
      try {
        resolve(text === '' ? null : JSON.parse(text))
      } catch (err) {
        reject(err)
      }
    })
    req.on('error', reject)
  })
}

export const nodeHttp: Adapter = {
  name: 'node:http',
  async start (spec) {
    return listen(http.createServer(nodeHandler(spec)))
  }
}

/** The node:http application; node:http2's compatibility API runs it as is. */
export function nodeHandler (spec: AppSpec): (req: IncomingMessage, res: ServerResponse) => void {
  const scoped = withRequestLocals(async (req: IncomingMessage & { parsedIn?: string }, res: ServerResponse) => {
    watchClose(spec, req, res)
    recordParsedIn(req)
    try {
      await spec.enter?.(req.headers)
      const body = await readJson(req)
      sendJson(res, 200, await spec.handle({ headers: req.headers, body, parsedIn: req.parsedIn ?? 'unparsed' }))
    } catch (err) {
      sendJson(res, 500, errorBody(spec, err))
    }
  }, { defaults: spec.defaults as never })
  return (req, res) => {
    if (req.url === '/outside') {
      sendJson(res, 200, spec.outside?.())
      return
    }
    if (spec.trace === undefined) {
      void scoped(req, res)
      return
    }
    void spec.trace.run(traceOf(req.headers), scoped, req, res)
  }
}
