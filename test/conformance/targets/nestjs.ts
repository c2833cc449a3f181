import 'reflect-metadata'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { All, Body, Catch, Controller, HttpCode, Inject, Module, Req, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import express from 'express'
import { RequestLocalsModule } from '../../../src/nestjs.js'
import { errorBody, recordParsedIn, traceOf, watchClose, type Adapter, type AppSpec } from '../app.js'
import { portOf } from '../../helpers/http.js'

// The spec's app as a Nest application: the module opens the scope; `enter`
// is global middleware (app.use), which runs before Nest parses the body on
// both platforms; the route is a controller; the error path an exception
// filter. `/outside` is served by the platform before Nest sees the request.

const SPEC = 'CONFORMANCE_SPEC'
type RawRequest = IncomingMessage & { parsedIn?: string }

function appModule (spec: AppSpec): new () => object {
  @Controller()
  class SpecController {
    constructor (@Inject(SPEC) private readonly spec: AppSpec) {}

    @All('/')
    @HttpCode(200)
    handle (@Req() req: RawRequest | { raw: RawRequest }, @Body() body: unknown): unknown {
      const raw = 'raw' in req ? req.raw : req
      const parsed = typeof body === 'object' && body !== null && Object.keys(body).length > 0 ? body : null
      return this.spec.handle({ headers: raw.headers, body: parsed, parsedIn: raw.parsedIn ?? 'unparsed' })
    }
  }

  @Module({
    imports: [RequestLocalsModule.forRoot({ defaults: spec.defaults as never })],
    controllers: [SpecController],
    providers: [{ provide: SPEC, useValue: spec }]
  })
  class ConformanceModule {}
  return ConformanceModule
}

@Catch()
class SpecErrors implements ExceptionFilter {
  constructor (private readonly spec: AppSpec) {}

  catch (err: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<{ code?: (status: number) => { send: (body: unknown) => void }, status?: (status: number) => { json: (body: unknown) => void } }>()
    if (typeof response.code === 'function') response.code(500).send(errorBody(this.spec, err))
    else response.status!(500).json(errorBody(this.spec, err))
  }
}

function nestAdapter (name: string, platform: 'express' | 'fastify'): Adapter {
  return {
    name,
    async start (spec) {
      let adapter: ExpressAdapter | FastifyAdapter
      if (platform === 'express') {
        // The user's own Express app, with routes and middleware of its own
        // ahead of everything Nest adds.
        const app = express()
        if (spec.trace !== undefined) {
          const trace = spec.trace
          app.use((req, _res, next) => { trace.run(traceOf(req.headers), next) })
        }
        app.get('/outside', (_req, res) => { res.json(spec.outside?.()) })
        adapter = new ExpressAdapter(app)
      } else {
        const fastify = new FastifyAdapter()
        const instance = fastify.getInstance()
        if (spec.trace !== undefined) {
          const trace = spec.trace
          instance.addHook('onRequest', (request, _reply, done) => { trace.run(traceOf(request.headers), done) })
        }
        instance.addHook('onRequest', async (request, reply) => {
          if (request.url === '/outside') return reply.send(spec.outside?.())
        })
        adapter = fastify
      }
      const app = await NestFactory.create(appModule(spec), adapter, { logger: false, forceCloseConnections: true, abortOnError: false })
      app.useGlobalFilters(new SpecErrors(spec))
      app.use((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => {
        watchClose(spec, req, res)
        recordParsedIn(req)
        Promise.resolve(spec.enter?.(req.headers)).then(() => next(), next)
      })
      await app.listen(0, '127.0.0.1')
      return { port: portOf(app.getHttpServer()), close: () => app.close() }
    }
  }
}

export const nestExpress = nestAdapter('nestjs (express)', 'express')
export const nestFastify = nestAdapter('nestjs (fastify)', 'fastify')
