import 'reflect-metadata'
import t, { type Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  Body, Catch, Controller, Get, HttpException, Inject, Injectable, Module, Post, Req, UseFilters, UseGuards, UseInterceptors,
  type ArgumentsHost, type CallHandler, type CanActivate, type DynamicModule, type ExceptionFilter, type ExecutionContext,
  type INestApplication, type MiddlewareConsumer, type NestInterceptor, type NestMiddleware, type NestModule, type PipeTransform
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { Test as NestTest } from '@nestjs/testing'
import { from, mergeMap, type Observable } from 'rxjs'
import { RequestLocalsModule, type RequestLocalsModuleOptions } from '../src/nestjs.js'
import { hasLocals, requestLocal, runWithLocals, tryGetLocals } from '../src/index.js'
import { Barrier, keepAliveAgent, portOf, send } from './helpers/http.js'
import { seededRandom } from './helpers/schedule.js'
import './helpers/locals.js'

// A Nest application on each platform, every stage of its request pipeline
// (middleware, guard, interceptor before and after the handler, pipe,
// controller, a singleton service, exception filter) recording the user it
// sees in a map keyed by the request's own header, outside the store, so a
// wrong store cannot hide itself. The guard authenticates, then holds every
// request at a barrier; each stage then waits a seeded delay, so the requests
// interleave at every stage.

const REQUESTS = 300
const SEED = Number(process.env.SEED ?? 19)
const STAGES = ['middleware', 'guard', 'interceptor', 'pipe', 'controller', 'service', 'after', 'filter'] as const
type Stage = typeof STAGES[number]

const currentUser = (): string => tryGetLocals()?.user?.id ?? 'none'
const userOf = (req: { headers: Record<string, unknown> }): string => String(req.headers['x-user'])

/** What every stage of every request saw, by the request's own user. */
class Witness {
  readonly seen = new Map<string, Partial<Record<Stage, string>>>()
  readonly #delays = new Map<string, number[]>()
  readonly barrier: Barrier

  constructor (count: number, seed: number) {
    this.barrier = new Barrier(count)
    const random = seededRandom(seed)
    for (let i = 0; i < count; i++) this.#delays.set(`user-${i}`, STAGES.map(() => random() * 4))
  }

  record (user: string, stage: Stage, value = currentUser()): void {
    const stages = this.seen.get(user) ?? {}
    stages[stage] = value
    this.seen.set(user, stages)
  }

  /** The request's own, seeded wait before a stage goes on. */
  delay (user: string, stage: Stage): Promise<void> {
    const ms = this.#delays.get(user)?.[STAGES.indexOf(stage)] ?? 0
    return new Promise((resolve) => setTimeout(resolve, ms))
  }

  mismatches (users: string[], stagesOf: (user: string) => readonly Stage[]): string[] {
    return users.flatMap((user) => stagesOf(user)
      .filter((stage) => this.seen.get(user)?.[stage] !== user)
      .map((stage) => `${user} ${stage}: ${this.seen.get(user)?.[stage] ?? 'not reached'}`))
  }
}

const WITNESS = 'WITNESS'

@Injectable()
class UsersService {
  constructor (@Inject(WITNESS) private readonly witness: Witness) {}

  async whoAmI (failing: boolean): Promise<string> {
    const user = currentUser()
    await this.witness.delay(user, 'service')
    this.witness.record(user, 'service')
    if (failing) throw new HttpException({ failed: currentUser() }, 418)
    return currentUser()
  }
}

@Injectable()
class AuthGuard implements CanActivate {
  constructor (@Inject(WITNESS) private readonly witness: Witness) {}

  async canActivate (context: ExecutionContext): Promise<boolean> {
    const user = userOf(context.switchToHttp().getRequest())
    requestLocal.user = { id: user }
    await this.witness.barrier.arrive()
    await this.witness.delay(user, 'guard')
    this.witness.record(user, 'guard')
    return true
  }
}

@Injectable()
class TimingInterceptor implements NestInterceptor {
  constructor (@Inject(WITNESS) private readonly witness: Witness) {}

  async intercept (context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const user = userOf(context.switchToHttp().getRequest())
    await this.witness.delay(user, 'interceptor')
    this.witness.record(user, 'interceptor')
    return next.handle().pipe(mergeMap((body) => from((async () => {
      await this.witness.delay(user, 'after')
      this.witness.record(user, 'after')
      return { ...body as object, after: currentUser() }
    })())))
  }
}

@Injectable()
class RecordingPipe implements PipeTransform {
  constructor (@Inject(WITNESS) private readonly witness: Witness) {}

  async transform (value: { user: string }): Promise<{ user: string, pipe: string }> {
    await this.witness.delay(value.user, 'pipe')
    this.witness.record(value.user, 'pipe')
    return { ...value, pipe: currentUser() }
  }
}

@Catch(HttpException)
class RecordingFilter implements ExceptionFilter {
  constructor (@Inject(WITNESS) private readonly witness: Witness) {}

  catch (exception: HttpException, host: ArgumentsHost): void {
    const http = host.switchToHttp()
    const user = userOf(http.getRequest())
    this.witness.record(user, 'filter')
    const body = { ...exception.getResponse() as object, filter: currentUser() }
    // The response object is the platform's own: Express's res or Fastify's reply.
    const response = http.getResponse<{ status?: (code: number) => { json: (body: unknown) => void }, code?: (code: number) => { send: (body: unknown) => void } }>()
    if (typeof response.code === 'function') response.code(exception.getStatus()).send(body)
    else response.status!(exception.getStatus()).json(body)
  }
}

@Controller()
@UseGuards(AuthGuard)
@UseInterceptors(TimingInterceptor)
@UseFilters(RecordingFilter)
class UsersController {
  constructor (@Inject(UsersService) private readonly users: UsersService, @Inject(WITNESS) private readonly witness: Witness) {}

  @Post('/whoami')
  async whoami (@Body(RecordingPipe) body: { user: string, pipe: string, fail?: boolean }): Promise<object> {
    await this.witness.delay(body.user, 'controller')
    this.witness.record(body.user, 'controller')
    return { controller: currentUser(), pipe: body.pipe, service: await this.users.whoAmI(body.fail === true), tenant: requestLocal.tenant }
  }

  @Get('/plain')
  plain (@Req() req: IncomingMessage): object {
    return { user: currentUser(), tenant: requestLocal.tenant ?? null, header: req.headers['x-user'] ?? null }
  }
}

@Injectable()
class RecordingMiddleware implements NestMiddleware {
  constructor (@Inject(WITNESS) private readonly witness: Witness) {}

  // Before the guard has authenticated: the middleware sees the request's
  // tenant (its defaults), which names the user it was made for.
  use (req: IncomingMessage, _res: ServerResponse, next: () => void): void {
    const user = userOf(req)
    this.witness.record(user, 'middleware', String(requestLocal.tenant).replace('tenant-of-', ''))
    void this.witness.delay(user, 'middleware').then(next)
  }
}

/** Jobs run outside any request, as @nestjs/schedule calls them: each opens its own scope. */
@Injectable()
class NightlyJob {
  constructor (@Inject(UsersService) private readonly users: UsersService) {}

  run (id: string): Promise<string> {
    return runWithLocals({ user: { id } }, () => this.users.whoAmI(false))
  }
}

function appModule (witness: Witness, locals: DynamicModule, withMiddleware = true): new () => NestModule {
  @Module({
    imports: [locals],
    controllers: [UsersController],
    providers: [UsersService, RecordingPipe, NightlyJob, { provide: WITNESS, useValue: witness }]
  })
  class AppModule implements NestModule {
    configure (consumer: MiddlewareConsumer): void {
      if (withMiddleware) consumer.apply(RecordingMiddleware).forRoutes(UsersController)
    }
  }
  return AppModule
}

const platforms = {
  express: () => new ExpressAdapter(),
  fastify: () => new FastifyAdapter()
}
type Platform = keyof typeof platforms

const tenantOf = (req: IncomingMessage): RequestLocalsModuleOptions['defaults'] => ({ tenant: `tenant-of-${userOf(req)}` })
const defaults: RequestLocalsModuleOptions = { defaults: (req) => tenantOf(req) as { tenant: string } }

async function listen (t: Test, app: INestApplication): Promise<number> {
  await app.listen(0, '127.0.0.1')
  t.teardown(() => app.close())
  return portOf(app.getHttpServer())
}

async function start (t: Test, platform: Platform, module: new () => object): Promise<{ app: INestApplication, port: number }> {
  const app = await NestFactory.create(module, platforms[platform](), { logger: false, forceCloseConnections: true, abortOnError: false })
  return { app, port: await listen(t, app) }
}

function agentFor (t: Test, sockets: number): ReturnType<typeof keepAliveAgent> {
  const agent = keepAliveAgent(sockets)
  t.teardown(() => agent.destroy())
  return agent
}

for (const platform of Object.keys(platforms) as Platform[]) {
  t.test(`${platform} platform`, async (t) => {
    t.test(`${REQUESTS} interleaved requests: every stage of each request and the jobs running meanwhile see only their own locals`, async (t) => {
      const witness = new Witness(REQUESTS, SEED)
      const module = appModule(witness, RequestLocalsModule.forRoot(defaults))
      const { app, port } = await start(t, platform, module)
      const job = app.get(NightlyJob)
      const agent = agentFor(t, REQUESTS)
      const failing = (i: number): boolean => i % 5 === 0
      const [responses, jobs] = await Promise.all([
        Promise.all(Array.from({ length: REQUESTS }, (_, i) => send({
          port,
          agent,
          method: 'POST',
          path: '/whoami',
          headers: { 'x-user': `user-${i}`, 'content-type': 'application/json' },
          body: JSON.stringify({ user: `user-${i}`, fail: failing(i) })
        }))),
        Promise.all(Array.from({ length: 50 }, (_, i) => job.run(`job-${i}`)))
      ])
      const users = Array.from({ length: REQUESTS }, (_, i) => `user-${i}`)
      const mismatches = witness.mismatches(users, (user) => failing(Number(user.slice(5)))
        ? ['middleware', 'guard', 'interceptor', 'pipe', 'controller', 'service', 'filter']
        : ['middleware', 'guard', 'interceptor', 'pipe', 'controller', 'service', 'after'])
      const wrongResponses = responses.flatMap((res, i) => {
        const user = `user-${i}`
        const expected = failing(i)
          ? { status: 418, body: { failed: user, filter: user } }
          : { status: 201, body: { controller: user, pipe: user, service: user, tenant: `tenant-of-${user}`, after: user } }
        return res.status === expected.status && JSON.stringify(res.json()) === JSON.stringify(expected.body) ? [] : [`${user}: ${res.status} ${res.text}`]
      })
      t.same(mismatches, [], '0 mismatches: no stage saw another request\'s user, nor lost its own')
      t.same(wrongResponses, [], 'every response carries its own request\'s values')
      t.same(jobs, Array.from({ length: 50 }, (_, i) => `job-${i}`), 'every job saw its own scope through the singleton service')
      t.equal(hasLocals(), false, 'nothing leaked into the test\'s own context')
    })

    t.test('under @nestjs/testing the scope opens at app.init(), before Nest middleware', async (t) => {
      const witness = new Witness(1, SEED)
      const moduleRef = await NestTest.createTestingModule({ imports: [appModule(witness, RequestLocalsModule.forRoot(defaults))] }).compile()
      const app = moduleRef.createNestApplication(platforms[platform](), { logger: false, forceCloseConnections: true })
      const port = await listen(t, app)
      const res = await send({ port, method: 'POST', path: '/whoami', headers: { 'x-user': 'user-0', 'content-type': 'application/json' }, body: '{"user":"user-0"}' })
      t.same(res.json(), { controller: 'user-0', pipe: 'user-0', service: 'user-0', tenant: 'tenant-of-user-0', after: 'user-0' })
      t.equal(witness.seen.get('user-0')?.middleware, 'user-0', 'the Nest middleware ran in the scope')
    })

    t.test('forRootAsync takes its options from injected providers', async (t) => {
      @Module({ providers: [{ provide: 'TENANT', useValue: 'from-config' }], exports: ['TENANT'] })
      class ConfigModule {}
      const locals = RequestLocalsModule.forRootAsync({
        imports: [ConfigModule],
        inject: ['TENANT'],
        useFactory: async (tenant: string) => ({ defaults: { tenant } })
      })
      const { port } = await start(t, platform, appModule(new Witness(1, SEED), locals))
      t.same((await send({ port, path: '/plain', headers: { 'x-user': 'u' } })).json(), { user: 'u', tenant: 'from-config', header: 'u', after: 'u' })
    })

    t.test('imported twice, the module gives each request one store', async (t) => {
      @Module({ imports: [RequestLocalsModule.forRoot({ defaults: { tenant: 'second' } })] })
      class FeatureModule {}
      const module = appModule(new Witness(1, SEED), RequestLocalsModule.forRoot({ defaults: { tenant: 'first' } }))
      @Module({ imports: [module, FeatureModule] })
      class RootModule {}
      const { port } = await start(t, platform, RootModule)
      const agent = agentFor(t, 1)
      t.same((await send({ port, agent, path: '/plain', headers: { 'x-user': 'a' } })).json(), { user: 'a', tenant: 'first', header: 'a', after: 'a' })
      t.same((await send({ port, agent, path: '/plain', headers: { 'x-user': 'b' } })).json(), { user: 'b', tenant: 'first', header: 'b', after: 'b' })
    })

    t.test('the echoed request id is on every answer: success, an exception filter\'s and Nest\'s 404', async (t) => {
      const { port } = await start(t, platform, appModule(new Witness(1, SEED), RequestLocalsModule.forRoot({ upstream: { trust: true }, requestId: { echoHeader: true } }), false))
      const agent = agentFor(t, 1)
      const answers = [
        await send({ port, agent, path: '/plain', headers: { 'x-user': 'a', 'x-request-id': 'id-ok' } }),
        await send({ port, agent, method: 'POST', path: '/whoami', headers: { 'x-user': 'a', 'x-request-id': 'id-filter', 'content-type': 'application/json' }, body: '{"user":"a","fail":true}' }),
        await send({ port, agent, path: '/nowhere', headers: { 'x-request-id': 'id-missing' } })
      ]
      t.same(answers.map((res) => [res.status, res.headers['x-request-id']]), [[200, 'id-ok'], [418, 'id-filter'], [404, 'id-missing']])
    })

    t.test('a defaults function that throws fails its request only', async (t) => {
      const { port } = await start(t, platform, appModule(new Witness(1, SEED), RequestLocalsModule.forRoot({
        defaults: (req) => {
          if (req.headers['x-user'] === 'bad') throw new Error('no tenant')
          return { tenant: 'ok' }
        }
      })))
      const agent = agentFor(t, 1)
      t.equal((await send({ port, agent, path: '/plain', headers: { 'x-user': 'bad' } })).status, 500)
      t.same((await send({ port, agent, path: '/plain', headers: { 'x-user': 'good' } })).json(), { user: 'good', tenant: 'ok', header: 'good', after: 'good' })
    })
  })
}

t.test('Fastify without middie (skipMiddie): the scope opens in the first onRequest hook', async (t) => {
  // Nest middleware needs middie: this application has none.
  const module = appModule(new Witness(1, SEED), RequestLocalsModule.forRoot({ defaults: { tenant: 'hooked' } }), false)
  const app = await NestFactory.create(module, new FastifyAdapter({ skipMiddie: true } as ConstructorParameters<typeof FastifyAdapter>[0]), { logger: false, forceCloseConnections: true, abortOnError: false })
  const port = await listen(t, app)
  t.same((await send({ port, path: '/plain', headers: { 'x-user': 'u' } })).json(), { user: 'u', tenant: 'hooked', header: 'u', after: 'u' })
})

t.test('an application context without HTTP gets no scope and no error', async (t) => {
  const app = await NestFactory.createApplicationContext(appModule(new Witness(1, SEED), RequestLocalsModule.forRoot()), { logger: false, abortOnError: false })
  t.teardown(() => app.close())
  t.equal(await app.get(NightlyJob).run('job'), 'job', 'jobs open their own scope')
})

t.test('another platform is refused at start-up, naming the supported ones', async (t) => {
  class OtherAdapter extends ExpressAdapter {
    override getType (): string { return 'other' }
  }
  await t.rejects(NestFactory.create(appModule(new Witness(1, SEED), RequestLocalsModule.forRoot()), new OtherAdapter(), { logger: false, abortOnError: false }), {
    code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT',
    message: /supports Nest's Express and Fastify platforms .*found the platform "other"/
  })
})

t.test('options are validated where they are given', async (t) => {
  t.throws(() => RequestLocalsModule.forRoot('tenant' as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /RequestLocalsModule\.forRoot\(options\) must be a plain object; found/ })
  t.throws(() => RequestLocalsModule.forRoot({ requestID: { echoHeader: true } } as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /RequestLocalsModule\.forRoot\(options\): found the unknown option `requestID`; did you mean `requestId`\?/ })
  t.throws(() => RequestLocalsModule.forRoot({ defaults: { tags: [() => 'not data'] } as never }), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /RequestLocalsModule\.forRoot\(options\)\.defaults\.tags\S* cannot be copied per request/ })
  t.throws(() => RequestLocalsModule.forRootAsync({} as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS', message: /expects \{ useFactory, inject\?, imports\? \}/ })
  t.throws(() => RequestLocalsModule.forRootAsync(null as never), { code: 'ERR_REQUEST_LOCALS_OPTIONS' })
  const locals = RequestLocalsModule.forRootAsync({ useFactory: () => 'nope' as never })
  await t.rejects(NestFactory.create(appModule(new Witness(1, SEED), locals), new ExpressAdapter(), { logger: false, abortOnError: false }), {
    code: 'ERR_REQUEST_LOCALS_OPTIONS',
    message: /RequestLocalsModule\.forRootAsync\(options\)\.useFactory\(\) must be a plain object/
  })
})
