import t from 'tap'
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { hasLocals, requestLocal } from '../src/index.js'
import { withLocals } from '../src/testing.js'
import './helpers/locals.js'

// A service as an application writes it: it reads the caller from the scope.
async function greet (): Promise<string> {
  await Promise.resolve()
  return `hello ${requestLocal.user!.id} of ${requestLocal.tenant}`
}

t.test('withLocals runs a tap test body in a scope', withLocals({ user: { id: 'u1' }, tenant: 'acme' }, async (t) => {
  t.equal(await greet(), 'hello u1 of acme')
}))

t.test('the wrapper forwards arguments and this, returns the body\'s result, keeps its length and name', async (t) => {
  const context = { name: 'ctx' }
  const body = function named (this: unknown, a: number, b: number): [unknown, number, string] {
    return [this, a + b, requestLocal.tenant!]
  }
  const wrapped = withLocals({ tenant: 't' }, body)
  t.same(wrapped.call(context, 1, 2), [context, 3, 't'])
  t.equal(wrapped.length, 2, 'frameworks that pass done look at length')
  t.equal(wrapped.name, 'named')
  t.not(withLocals({}, () => {}).name, '', 'an anonymous body still gets a name for stack traces')
  t.equal(hasLocals(), false, 'the scope ends with the body')
})

t.test('a values function gives every run fresh values; plain values are copied per run', async (t) => {
  const fresh = withLocals(() => ({ tags: ['base'] }), () => { requestLocal.tags!.push('run'); return requestLocal.tags })
  t.same(fresh(), ['base', 'run'])
  t.same(fresh(), ['base', 'run'], 'the second run did not see the first run\'s push')
  const plain = withLocals({ tenant: 'a' }, () => { const before = requestLocal.tenant; requestLocal.tenant = 'b'; return before })
  t.equal(plain(), 'a')
  t.equal(plain(), 'a', 'a write in one run does not reach the next')
})

t.test('withLocals refuses a body that is not a function', async (t) => {
  t.throws(() => withLocals({}, 'nope' as unknown as () => void), { code: 'ERR_REQUEST_LOCALS_INVALID_ARGUMENT', message: /withLocals\(locals, body\) expects body to be a function; found a string/ })
})

t.test('works under node:test, promise and done-callback bodies alike', async (t) => {
  // The fixture imports the built package by its name, as an application's
  // tests do; node:test decides from the body's length whether to pass done.
  const root = resolve(import.meta.dirname, '..')
  const dir = t.testdir({
    node_modules: { 'request-locals': t.fixture('symlink', root) },
    'service.test.mjs': `
      import { test } from 'node:test'
      import assert from 'node:assert/strict'
      import { requestLocal } from 'request-locals'
      import { withLocals } from 'request-locals/testing'

      const greet = async () => 'hello ' + requestLocal.user.id

      test('promise body', withLocals({ user: { id: 'p1' } }, async (t) => {
        assert.equal(typeof t.diagnostic, 'function')
        assert.equal(await greet(), 'hello p1')
      }))
      test('done body', withLocals(() => ({ user: { id: 'd1' } }), (t, done) => {
        setTimeout(() => { greet().then((text) => { assert.equal(text, 'hello d1'); done() }, done) }, 1)
      }))
      test('outside withLocals the service has no scope', async () => {
        await assert.rejects(greet(), { code: 'ERR_REQUEST_LOCALS_NO_SCOPE' })
      })
    `
  })
  const { stdout } = await promisify(execFile)(process.execPath, ['--test', '--test-reporter=tap', 'service.test.mjs'], { cwd: dir })
  t.match(stdout, /^# pass 3$/m)
  t.match(stdout, /^# fail 0$/m)
})
