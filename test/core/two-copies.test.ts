import t from 'tap'
import { installCopies, runModule } from '../helpers/installed.js'

// Two installed copies of the package (an application's and the one a
// library bundles, of another version) act as one: whatever one copy writes
// for a scope, the other reads. Each copy is the built package, installed
// under its own name outside the repository, and loaded by a child process
// as an application would load it.

const copies = [{ name: 'request-locals' }, { name: 'bundled-locals', version: '0.0.9' }]

t.test('a resource defined through one copy and ended through the other reports a failed COMMIT', async (t) => {
  const dir = installCopies(t, copies)
  const out = await runModule(dir, `
    import * as a from 'request-locals'
    import * as b from 'bundled-locals'
    const seen = []
    function transaction (through) {
      return through.defineRequestResource({
        name: 'tx',
        create: () => ({ id: 'tx' }),
        dispose: (tx, outcome) => {
          seen.push(outcome.status)
          if (outcome.ok) throw new Error('COMMIT failed: serialization failure')
        }
      })
    }
    async function endThrough (defined, ended, opened) {
      return opened.runWithLocals({}, async () => {
        await transaction(defined).get()
        try {
          await ended.endRequestResources()
          return 'resolved'
        } catch (err) {
          return [err.code, err instanceof a.RequestLocalsError, err instanceof b.RequestLocalsError, /COMMIT failed/.test(err.message)].join(' ')
        }
      })
    }
    console.log(JSON.stringify({
      aThenB: await endThrough(a, b, a),
      bThenA: await endThrough(b, a, b),
      openedByB: await endThrough(a, b, b),
      seen
    }))
  `)
  t.same(JSON.parse(out), {
    aThenB: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED true true true',
    bThenA: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED true true true',
    openedByB: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED true true true',
    seen: ['completed', 'completed', 'completed']
  }, 'the caller learns the COMMIT failed, and the resource is disposed once')
})

t.test('errors, bound emitters and debug mode are shared by both copies', async (t) => {
  const dir = installCopies(t, copies)
  const out = await runModule(dir, `
    import { EventEmitter } from 'node:events'
    import * as a from 'request-locals'
    import * as b from 'bundled-locals'
    const result = {}
    try { b.requestLocal.user } catch (err) {
      result.instanceOf = [err instanceof a.RequestLocalsError, err instanceof Error, {} instanceof a.RequestLocalsError]
    }
    // Bound through one copy, bound again through the other: the second binding wins.
    const emitter = new EventEmitter()
    a.runWithLocals({ tenant: 'first' }, () => a.bindEmitter(emitter))
    b.runWithLocals({ tenant: 'second' }, () => b.bindEmitter(emitter))
    emitter.on('ping', () => { result.rebound = a.requestLocal.tenant })
    emitter.emit('ping')
    // Debug mode turned on through one copy explains the other's NO_SCOPE error.
    a.setLocalsDebug(true)
    await new Promise((resolve) => setTimeout(resolve, 1))
    try { b.requestLocal.user } catch (err) { result.debug = err.message.includes('[debug]') }
    a.setLocalsDebug(false)
    console.log(JSON.stringify(result))
  `)
  t.same(JSON.parse(out), { instanceOf: [true, true, false], rebound: 'second', debug: true })
})

t.test('two copies of the Express middleware on one app: one store, and the request events run in it', async (t) => {
  const dir = installCopies(t, copies, ['express'])
  const out = await runModule(dir, `
    import http from 'node:http'
    import express from 'express'
    import * as a from 'request-locals'
    import { expressRequestLocals as aMiddleware } from 'request-locals/express'
    import * as b from 'bundled-locals'
    import { expressRequestLocals as bMiddleware } from 'bundled-locals/express'
    const seen = []
    const tx = a.defineRequestResource({
      name: 'tx',
      create: () => ({}),
      dispose: (_tx, outcome) => { if (outcome.ok) throw new Error('COMMIT failed') }
    })
    const app = express()
    app.use(aMiddleware({ defaults: { tenant: 'public' } }))
    // A library's router, with the copy it bundles.
    app.use(bMiddleware())
    app.post('/', (req, res) => {
      b.requestLocal.user = String(req.headers['x-user'])
      req.on('data', () => {})
      req.on('end', async () => {
        seen.push('end:' + a.requestLocal.user)
        res.on('finish', () => seen.push('finish:' + a.requestLocal.user + ':' + (res.locals === a.tryGetLocals())))
        await tx.get()
        try {
          await b.endRequestResources()
          res.status(200).send('committed')
        } catch (err) {
          res.status(500).send(err.code)
        }
      })
    })
    const server = http.createServer(app)
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address()
    const response = await fetch('http://127.0.0.1:' + port + '/', { method: 'POST', headers: { 'x-user': 'alice' }, body: 'x'.repeat(10) })
    const body = await response.text()
    server.close()
    console.log(JSON.stringify({ status: response.status, body, seen }))
  `)
  t.same(JSON.parse(out), {
    status: 500,
    body: 'ERR_REQUEST_LOCALS_DISPOSE_FAILED',
    seen: ['end:alice', 'finish:alice:true']
  }, 'the failed COMMIT becomes a 500, and the events see the store the handlers wrote')
})

t.test('RequestLocalsError: another copy\'s error is an instance, by its registered brand; subclasses check as usual', async (t) => {
  const { RequestLocalsError } = await import('../../src/index.js')
  // What another installed copy's class leaves on its prototype.
  const foreignPrototype = Object.create(Error.prototype, { [Symbol.for('request-locals.error')]: { value: true } })
  const foreign = Object.create(foreignPrototype)
  t.ok(foreign instanceof RequestLocalsError)
  t.notOk({ code: 'ERR_REQUEST_LOCALS_NO_SCOPE' } instanceof RequestLocalsError)
  t.notOk((null as unknown as object) instanceof RequestLocalsError)
  class TimeoutError extends RequestLocalsError {}
  t.ok(new TimeoutError('ERR_REQUEST_LOCALS_OPTIONS', 'x') instanceof TimeoutError)
  t.notOk(new RequestLocalsError('ERR_REQUEST_LOCALS_OPTIONS', 'x') instanceof TimeoutError)
  t.ok(new TimeoutError('ERR_REQUEST_LOCALS_OPTIONS', 'x') instanceof RequestLocalsError)
})
