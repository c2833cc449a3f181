import type { IncomingMessage, ServerResponse } from 'node:http'
import { Inject, type DynamicModule, type HttpServer, type InjectionToken, type ModuleMetadata, type NestModule, type OptionalFactoryDependency } from '@nestjs/common'
import { HttpAdapterHost } from '@nestjs/core'
import { describe, invalidArgumentError, optionsError } from './core/errors.js'
import { expressRequestLocals } from './express.js'
import { compileNodeScopeOptions, type NodeScopeOptions, type NodeScopePolicy } from './node/request-scope.js'
import { requestScopeMiddleware, type MiddlewareNext } from './node/middleware.js'

// Nest runs on an HTTP platform (Express or Fastify) and calls guards,
// interceptors, pipes, the handler and exception filters from inside that
// platform's request handling. So the scope is opened by the platform, as
// early as it can be, with the adapter already written for it:
//
// - Express: the Express middleware, first in the app's stack. `res.locals`
//   is the store, as in any Express app.
// - Fastify: a middleware run by @fastify/middie, which Nest registers for its
//   own middleware. A Fastify onRequest hook added now would run after
//   middie's, so Nest middleware (and everything a middleware calls) would
//   miss the scope. Middie hands middleware the raw request and response, so
//   the scope opens the node:http way, with their events scoped as well.
//
// "As early as it can be": Nest creates the providers before main.ts can add
// middleware with app.use(), and, on Express, before its body parsers; the
// installer provider mounts the middleware there. Under @nestjs/testing the
// providers are created before the application (and its platform) exists;
// then the module's configure(), which app.init() calls before it registers
// any Nest middleware or route, mounts it.
//
// The module is written without decorators so the library compiles without
// experimentalDecorators; Inject() is applied by hand below.

/**
 * Options of {@link RequestLocalsModule}: the options every adapter takes
 * ({@link RequestScopeOptions}), with `defaults` and `requestId.generate`
 * given the Node.js request (Express's `req`, or Fastify's `request.raw`),
 * and a `logger` for replaced request ids.
 *
 * @example
 * RequestLocalsModule.forRoot({
 *   defaults: (req) => ({ tenant: String(req.headers['x-tenant'] ?? 'public') }),
 *   requestId: { echoHeader: true },
 *   upstream: { trust: process.env.BEHIND_GATEWAY === '1' }
 * })
 */
export interface RequestLocalsModuleOptions extends NodeScopeOptions<IncomingMessage> {}

/**
 * Options of {@link RequestLocalsModule.forRootAsync}: the options are made
 * by a factory that Nest calls with the providers listed in `inject`.
 *
 * @example
 * RequestLocalsModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({ upstream: { trust: config.get('BEHIND_GATEWAY') === '1' } })
 * })
 */
export interface RequestLocalsModuleAsyncOptions {
  /** Modules whose exported providers `inject` names. */
  imports?: ModuleMetadata['imports']
  /** The providers `useFactory` is called with, in order. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>
  /** Makes the options, from the providers in `inject`. */
  useFactory: (...args: never[]) => RequestLocalsModuleOptions | Promise<RequestLocalsModuleOptions>
}

/** The raw-request middleware of the Fastify platform, as @fastify/middie calls it. */
type NodeMiddleware = (req: IncomingMessage, res: ServerResponse, next: MiddlewareNext) => void

/** What of a Fastify instance the installer uses: middie's `use`, or a hook when middie is absent. */
interface FastifyLike {
  use?: (middleware: NodeMiddleware) => unknown
  addHook: (name: 'onRequest', hook: (request: { raw: IncomingMessage }, reply: { raw: ServerResponse }, done: (err?: unknown) => void) => void) => unknown
}

/** Opens the scope on one Nest application's platform, once. */
class RequestScopeInstaller {
  private installed = false

  constructor (private readonly options: RequestLocalsModuleOptions, private readonly policy: NodeScopePolicy<IncomingMessage>) {}

  installOn (adapter: HttpServer | null | undefined): void {
    // No platform: an application context (a worker, a CLI: null), or a
    // testing module not yet made into an application (undefined), which
    // calls configure() once it is one.
    if (adapter === undefined || adapter === null || this.installed) return
    const platform = adapter.getType()
    if (platform === 'express') {
      adapter.use(expressRequestLocals(this.options))
    } else if (platform === 'fastify') {
      // Middie hands middleware the raw request and response, so the scope
      // opens the node:http way; the request keeps the one store it was given
      // first (the middleware mounted by hand as well, or called again).
      const open = requestScopeMiddleware<IncomingMessage, ServerResponse>('openNestRequestScope', this.policy)
      const fastify = adapter.getInstance() as FastifyLike
      if (typeof fastify.use === 'function') {
        adapter.use(open)
      } else {
        // FastifyAdapter({ skipMiddie: true }): there is no Nest middleware to
        // run before, and the first free onRequest hook is the earliest point.
        fastify.addHook('onRequest', function openNestRequestScopeOnRequest (request, reply, done) {
          open(request.raw, reply.raw, done)
        })
      }
    } else {
      throw invalidArgumentError(
        `RequestLocalsModule supports Nest's Express and Fastify platforms (@nestjs/platform-express, @nestjs/platform-fastify); found the platform ${JSON.stringify(platform)}. ` +
        'On another platform, open the scope with the request-locals adapter of its HTTP server, or wrap each request in runWithLocals.'
      )
    }
    this.installed = true
  }
}

function compileInstaller (options: RequestLocalsModuleOptions, where: string): RequestScopeInstaller {
  return new RequestScopeInstaller(options, compileNodeScopeOptions<IncomingMessage>(options, where))
}

const kInstaller = Symbol('request-locals.nestjs.installer')
const kOptions = Symbol('request-locals.nestjs.options')

/**
 * The NestJS module (Nest 11, Express and Fastify platforms): opens one scope
 * per request before any middleware, guard, interceptor, pipe, handler or
 * exception filter runs, so `requestLocal` works in all of them and in every
 * service they call, without request-scoped providers. Import it once, in
 * the root module. Nest is loaded by this entry point only.
 *
 * @example
 * import { Module } from '@nestjs/common'
 * import { RequestLocalsModule } from 'request-locals/nestjs'
 *
 * @Module({ imports: [RequestLocalsModule.forRoot({ defaults: { tenant: 'public' } })] })
 * export class AppModule {}
 */
export class RequestLocalsModule implements NestModule {
  /** @internal Nest creates the module; applications call forRoot or forRootAsync. */
  constructor (private readonly host: HttpAdapterHost, private readonly installer: RequestScopeInstaller) {}

  /**
   * Called by Nest at `app.init()`, before it mounts any Nest middleware or
   * route: opens the scope there if the application's platform did not exist
   * when the module's providers were created (`@nestjs/testing`).
   *
   * @example
   * const app = moduleRef.createNestApplication()
   * await app.init() // calls configure()
   */
  configure (): void {
    this.installer.installOn(this.host.httpAdapter)
  }

  /**
   * The module, with options known when the module is declared.
   * The options are validated here: a mistake is an error at start-up.
   *
   * @example
   * @Module({ imports: [RequestLocalsModule.forRoot({ requestId: { echoHeader: true } })] })
   * export class AppModule {}
   */
  static forRoot (options: RequestLocalsModuleOptions = {}): DynamicModule {
    const installer = compileInstaller(options, 'RequestLocalsModule.forRoot(options)')
    return {
      module: RequestLocalsModule,
      providers: [{
        provide: kInstaller,
        useFactory: function installRequestScope (host: HttpAdapterHost): RequestScopeInstaller {
          installer.installOn(host.httpAdapter)
          return installer
        },
        inject: [HttpAdapterHost]
      }]
    }
  }

  /**
   * The module, with options made by a factory from other providers (a
   * configuration service). The options are validated when Nest calls it.
   *
   * @example
   * @Module({
   *   imports: [RequestLocalsModule.forRootAsync({
   *     imports: [ConfigModule],
   *     inject: [ConfigService],
   *     useFactory: (config: ConfigService) => ({ upstream: { trust: config.get('TRUST_UPSTREAM') === 'yes' } })
   *   })]
   * })
   * export class AppModule {}
   */
  static forRootAsync (options: RequestLocalsModuleAsyncOptions): DynamicModule {
    if (typeof options !== 'object' || options === null || typeof options.useFactory !== 'function') {
      throw optionsError(`RequestLocalsModule.forRootAsync(options) expects { useFactory, inject?, imports? } with useFactory a function returning the options; found ${describe(options)}.`)
    }
    return {
      module: RequestLocalsModule,
      imports: options.imports ?? [],
      providers: [
        { provide: kOptions, useFactory: options.useFactory, inject: options.inject ?? [] },
        {
          provide: kInstaller,
          useFactory: function installRequestScope (made: RequestLocalsModuleOptions, host: HttpAdapterHost): RequestScopeInstaller {
            const installer = compileInstaller(made, 'RequestLocalsModule.forRootAsync(options).useFactory()')
            installer.installOn(host.httpAdapter)
            return installer
          },
          inject: [kOptions, HttpAdapterHost]
        }
      ]
    }
  }
}

// What @Inject() on the constructor's parameters would record.
Inject(HttpAdapterHost)(RequestLocalsModule, undefined, 0)
Inject(kInstaller)(RequestLocalsModule, undefined, 1)

export type { RequestIdOptions, RequestIdRejection, UpstreamOptions } from './headers/request-id.js'
export type { RequestScopeOptions } from './adapters/scope-options.js'
export type { InboundBaggageOptions } from './headers/baggage.js'
export type { DebugLogger } from './node/request-scope.js'
