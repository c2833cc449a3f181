import http from 'node:http'
import Koa3 from 'koa'
import Koa2 from 'koa2'
import { bodyParser } from '@koa/bodyparser'
import type { IncomingMessage } from 'node:http'
import { koaRequestLocals } from '../../../src/koa.js'
import { errorBody, listen, recordParsedIn, traceOf, watchClose, type Adapter } from '../app.js'

function koaAdapter (name: string, Koa: typeof Koa3): Adapter {
  return {
    name,
    async start (spec) {
      const app = new Koa()
      if (spec.trace !== undefined) {
        const trace = spec.trace
        app.use((ctx, next) => trace.run(traceOf(ctx.headers), next))
      }
      // Mounted before the middleware, so it runs outside the scope.
      app.use(async (ctx, next) => {
        if (ctx.path === '/outside') ctx.body = spec.outside?.()
        else await next()
      })
      app.use(koaRequestLocals({ defaults: spec.defaults as never }))
      // Koa's idiom for errors: a middleware near the top catches what the
      // ones after it throw.
      app.use(async (ctx, next) => {
        try {
          await next()
        } catch (err) {
          ctx.status = 500
          ctx.body = errorBody(spec, err)
        }
      })
      app.use(async (ctx, next) => {
        watchClose(spec, ctx.req, ctx.res)
        recordParsedIn(ctx.req)
        await spec.enter?.(ctx.headers)
        await next()
      })
      // @koa/bodyparser (co-body): koa-body's formidable asks Deno for the
      // host name at import, a permission a body parser should not need.
      app.use(bodyParser())
      app.use(async (ctx) => {
        const req = ctx.req as IncomingMessage & { parsedIn?: string }
        const body: unknown = ctx.request.body
        const parsed = typeof body === 'object' && body !== null && Object.keys(body).length > 0 ? body : null
        ctx.body = await spec.handle({ headers: ctx.headers, body: parsed, parsedIn: req.parsedIn ?? 'unparsed' })
      })
      return listen(http.createServer(app.callback()))
    }
  }
}

export const koa3 = koaAdapter('koa 3', Koa3)
export const koa2 = koaAdapter('koa 2', Koa2 as unknown as typeof Koa3)
