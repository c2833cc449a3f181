// Compiled by `npm run typecheck` (tsc), not run. The keys come from the
// augmentation in augmentation.ts (tenant: string, user?: User).
import http from 'node:http'
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import express from 'express'
import { expressRequestLocals } from 'request-locals/express'
import { withRequestLocals } from 'request-locals/http'

const app = express()
app.use(expressRequestLocals())
app.use(expressRequestLocals({ defaults: (req) => ({ tenant: req.hostname }) }))
app.use(expressRequestLocals({ defaults: { tenant: 'public' } }))
// @ts-expect-error defaults are typed by RequestLocals
expressRequestLocals({ defaults: { tenant: 3 } })
app.get('/', (_req, res) => {
  res.send(String(res.locals.tenant))
})

const handler = withRequestLocals(async (req, res) => { res.end(req.url) }, { defaults: (req) => ({ tenant: req.headers.host ?? 'none' }) })
const returned: Promise<void> = handler(new http.IncomingMessage(null as never), null as never)
http.createServer(handler)
// node:http2's compatibility API, cleartext and TLS: typed parameters pick the HTTP/2 overload.
const h2handler = withRequestLocals(async (req: Http2ServerRequest, res: Http2ServerResponse) => { res.end(req.url) }, { defaults: (req) => ({ tenant: req.authority }) })
http2.createServer(h2handler)
http2.createSecureServer({}, h2handler)
// @ts-expect-error a node:http handler is not an HTTP/2 one
http2.createServer(handler)
// @ts-expect-error the handler must be a function
withRequestLocals('nope')
// @ts-expect-error defaults are typed by RequestLocals
withRequestLocals(() => {}, { defaults: { tenant: 3 } })

export { returned }
