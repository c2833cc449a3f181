import { describe, invalidArgumentError } from './core/errors.js'
import { runWithLocals, type RequestLocals } from './index.js'

// A function's returned object literal escapes TypeScript's excess-property
// check; this makes each key a values function returns beyond RequestLocals'
// own a compile error too.
type NoUnknownKeys<V> = { [K in Exclude<keyof V, keyof RequestLocals>]: never }

/**
 * Wraps a test body so that it runs in a scope holding `locals`, for unit
 * tests of services that read `requestLocal`. Imports no test framework: the
 * wrapper forwards its arguments and `this` (tap's and node:test's `t`,
 * Jest's and Mocha's `done`), returns what the body returns (a promise is
 * awaited by the framework, inside the scope), and keeps the body's `length`,
 * which Jest, Mocha and node:test read to decide whether to pass `done`.
 * `locals` is typed by `RequestLocals`: unknown keys and wrong value types
 * are compile errors. Pass a function to build fresh values for every run.
 *
 * @example
 * import { test } from 'node:test'           // or tap, or Jest's global test
 * import { withLocals } from 'request-locals/testing'
 *
 * test('lists the user\'s notes', withLocals({ user: { id: 'u1' } }, async () => {
 *   assert.deepEqual(await listNotes(), [])  // listNotes reads requestLocal.user
 * }))
 */
export function withLocals<A extends unknown[], R, V extends Partial<RequestLocals> = Partial<RequestLocals>> (
  locals: Partial<RequestLocals> | (() => V & NoUnknownKeys<V>),
  body: (...args: A) => R
): (...args: A) => R {
  if (typeof body !== 'function') {
    throw invalidArgumentError(`withLocals(locals, body) expects body to be a function; found ${describe(body)}. Pass the test body, e.g. withLocals({ tenant: 't1' }, async () => { … }).`)
  }
  const run = function runTestWithLocals (this: unknown, ...args: A): R {
    const values = typeof locals === 'function' ? locals() : locals
    return runWithLocals(values, () => body.apply(this, args))
  }
  Object.defineProperty(run, 'length', { value: body.length })
  Object.defineProperty(run, 'name', { value: body.name === '' ? 'runTestWithLocals' : body.name })
  return run
}
