import http from 'node:http'
import express5 from 'express'
import express4 from 'express4'
import type { NextFunction, Request, Response } from 'express'
import { expressRequestLocals } from '../../../src/express.js'
import { errorBody, listen, recordParsedIn, traceOf, watchClose, type Adapter } from '../app.js'

function expressAdapter (name: string, express: typeof express5): Adapter {
  return {
    name,
    async start (spec) {
      const app = express()
      if (spec.trace !== undefined) {
        const trace = spec.trace
        app.use((req, _res, next) => { trace.run(traceOf(req.headers), next) })
      }
      // Mounted before the middleware, so it runs outside the scope.
      app.get('/outside', (_req, res) => { res.json(spec.outside?.()) })
      app.use(expressRequestLocals({ defaults: spec.defaults as never }))
      app.use((req: Request, res: Response, next: NextFunction) => {
        watchClose(spec, req, res)
        recordParsedIn(req)
        Promise.resolve(spec.enter?.(req.headers)).then(() => next(), next)
      })
      app.use(express.json())
      app.all('/', (req: Request & { parsedIn?: string }, res: Response, next: NextFunction) => {
        // Called synchronously, so a throw takes Express's own catch path.
        const result = spec.handle({ headers: req.headers, body: req.body ?? null, parsedIn: req.parsedIn ?? 'unparsed' })
        Promise.resolve(result).then((value) => { res.json(value) }, next)
      })
      app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
        res.status(500).json(errorBody(spec, err))
      })
      return listen(http.createServer(app))
    }
  }
}

export const express5Adapter = expressAdapter('express 5', express5)
export const express4Adapter = expressAdapter('express 4', express4 as unknown as typeof express5)
