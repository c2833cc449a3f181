import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { captureLogs } from './helpers/logs.js'

t.test('the example app greets the user its hook authenticated', async (t) => {
  process.env.NODE_ENV = 'test'
  const app = await buildApp()
  t.teardown(() => app.close())
  t.same((await app.inject({ url: '/hello', headers: { 'x-user': 'alice' } })).json(), { message: 'Hello, Alice.' })
  t.same((await app.inject({ url: '/hello' })).json(), { message: 'Hello, stranger.' })
})

t.test('the example app\'s lines from route, service and repository carry the request id and user; start-up lines none', async (t) => {
  const { logger, lines } = captureLogs()
  const app = await buildApp(logger as FastifyBaseLogger)
  t.teardown(() => app.close())
  const alice = await app.inject({ url: '/hello', headers: { 'x-user': 'alice', 'x-request-id': 'trace-me-1' } })
  const hostile = await app.inject({ url: '/hello', headers: { 'x-user': 'bob', 'x-request-id': 'evil\r\nX-Admin: 1' } })
  t.equal(alice.headers['x-request-id'], 'trace-me-1', 'a valid incoming id is used and echoed')
  t.not(hostile.headers['x-request-id'], 'evil\r\nX-Admin: 1', 'a hostile one is replaced, not echoed')

  t.same(lines.filter((line) => line.msg === 'routes ready').map((line) => [line.reqId, line.userId]), [[undefined, undefined]], 'start-up lines carry no request fields')
  for (const [id, user] of [['trace-me-1', 'alice'], [hostile.headers['x-request-id'], 'bob']]) {
    const own = lines.filter((line) => line.reqId === id && line.msg !== 'request-locals: replaced the incoming request id')
    t.same(own.map((line) => line.msg), ['incoming request', 'user lookup', 'hello route', 'greeting', 'request completed'], `${user}: route, repository and service lines`)
    t.same(own.slice(2).map((line) => line.userId), [user, user, user], `${user}: every line after authentication carries the user`)
  }
  t.match(lines.find((line) => line.msg === 'request-locals: replaced the incoming request id'), { level: 20, reqId: hostile.headers['x-request-id'], reason: 'invalid-characters' })
  t.notOk(JSON.stringify(lines).includes('X-Admin'), 'the hostile value is never logged')
})
