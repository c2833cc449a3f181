import t from 'tap'
import { buildApp } from '../example-app/app.js'

t.test('the example app greets the user its hook authenticated', async (t) => {
  process.env.NODE_ENV = 'test'
  const app = await buildApp()
  t.teardown(() => app.close())
  t.same((await app.inject({ url: '/hello', headers: { 'x-user': 'alice' } })).json(), { message: 'Hello, Alice.' })
  t.same((await app.inject({ url: '/hello' })).json(), { message: 'Hello, stranger.' })
})
