import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

// These tests load the built package (dist/) by its name, as a user would,
// so `npm test` builds first (the pretest script).
const root = resolve(import.meta.dirname, '..')
const run = promisify(execFile)

async function node (file: string, source: string, cwd: string): Promise<string> {
  const path = join(cwd, file)
  writeFileSync(path, source)
  const { stdout } = await run(process.execPath, [path], { cwd })
  return stdout.trim()
}

// An application folder in the system's temp folder with a copy of the built
// package installed under its name: outside the repository, so that no
// node_modules above it holds the optional peers (express, @opentelemetry/api).
function installedOutsideRepository (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'request-locals-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const target = join(dir, 'node_modules', 'request-locals')
  mkdirSync(target, { recursive: true })
  cpSync(join(root, 'dist'), join(target, 'dist'), { recursive: true, dereference: true })
  cpSync(join(root, 'package.json'), join(target, 'package.json'))
  return dir
}

t.test('import and require reach the same storage', async (t) => {
  // An application folder with the package installed (linked) under its name.
  const dir = t.testdir({ node_modules: { 'request-locals': t.fixture('symlink', root) } })
  const out = await node('main.mjs', `
    import { createRequire } from 'node:module'
    import * as esm from 'request-locals'
    import fastifyEsm from 'request-locals/fastify'
    const require = createRequire(import.meta.url)
    const cjs = require('request-locals')
    const fastifyCjs = require('request-locals/fastify')
    const seen = esm.runWithLocals({ tenant: 'from-import' }, () => cjs.requestLocal.tenant)
    const back = cjs.runWithLocals({ tenant: 'from-require' }, () => esm.requestLocal.tenant)
    console.log(JSON.stringify({
      seen, back,
      sameFunction: esm.runWithLocals === cjs.runWithLocals,
      plugin: typeof fastifyEsm, sameplugin: fastifyEsm === (fastifyCjs.default ?? fastifyCjs),
      named: typeof fastifyCjs.fastifyRequestLocals,
      error: new cjs.RequestLocalsError('ERR_REQUEST_LOCALS_OPTIONS', 'x') instanceof esm.RequestLocalsError
    }))
  `, dir)
  t.same(JSON.parse(out), { seen: 'from-import', back: 'from-require', sameFunction: true, plugin: 'function', sameplugin: true, named: 'function', error: true })
})

t.test('request-locals/pino loads by import and require without pino at run time', async (t) => {
  const dir = t.testdir({ node_modules: { 'request-locals': t.fixture('symlink', root) } })
  const out = await node('main.mjs', `
    import { createRequire } from 'node:module'
    import * as esm from 'request-locals/pino'
    const require = createRequire(import.meta.url)
    const cjs = require('request-locals/pino')
    console.log(JSON.stringify({
      esm: [typeof esm.requestLogger, typeof esm.addLogBindings, typeof esm.logMixin],
      same: esm.addLogBindings === cjs.addLogBindings
    }))
  `, dir)
  t.same(JSON.parse(out), { esm: ['function', 'function', 'function'], same: true })
  // pino is an optional peer: only its types may be referenced.
  t.notMatch(readFileSync(join(root, 'dist', 'pino.js'), 'utf8'), /^import [^\n]*['"]pino['"]|require\(['"]pino['"]\)/m, 'no import of pino in dist/pino.js')
})

t.test('two installed copies of the package share one storage', async (t) => {
  const dir = t.testdir({})
  for (const name of ['copy-a', 'copy-b']) {
    const target = join(dir, 'node_modules', name)
    mkdirSync(target, { recursive: true })
    cpSync(join(root, 'dist'), join(target, 'dist'), { recursive: true, dereference: true })
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    writeFileSync(join(target, 'package.json'), JSON.stringify({ ...pkg, name }))
  }
  const out = await node('main.mjs', `
    import * as a from 'copy-a'
    import * as b from 'copy-b'
    console.log(a.runWithLocals({ tenant: 'shared' }, () => b.requestLocal.tenant))
    // A resource of one copy, used in a scope the other copy opened, is disposed when that scope ends.
    const log = []
    const conn = b.defineRequestResource({ name: 'conn', create: () => 'conn', dispose: (value, outcome) => { log.push(value + ' ' + outcome.status) } })
    await a.runWithLocals({}, () => conn.get())
    console.log(log.join())
  `, dir)
  t.equal(out, 'shared\nconn completed')
})

t.test('the package exposes only its entry points', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  t.same(Object.keys(pkg.exports).sort(), ['.', './express', './fastify', './hono', './http', './koa', './nestjs', './opentelemetry', './package.json', './pino', './propagation', './testing'])
  t.equal(pkg.type, 'module')
  t.equal(pkg.engines.node, '>=20.19')
  t.equal(pkg.peerDependenciesMeta.fastify.optional, true)
  t.notOk(pkg.dependencies.fastify, 'fastify is not a hard dependency')
  t.equal(pkg.peerDependenciesMeta.pino.optional, true)
  t.notOk(pkg.dependencies.pino, 'pino is not a hard dependency')
  t.equal(pkg.peerDependenciesMeta.express.optional, true)
  t.notOk(pkg.dependencies.express, 'express is not a hard dependency')
  t.equal(pkg.peerDependenciesMeta.hono.optional, true)
  t.notOk(pkg.dependencies.hono, 'hono is not a hard dependency')
  t.equal(pkg.peerDependenciesMeta['@opentelemetry/api'].optional, true)
  t.notOk(pkg.dependencies['@opentelemetry/api'], '@opentelemetry/api is not a hard dependency')
  for (const peer of ['koa', '@nestjs/common', '@nestjs/core', '@nestjs/platform-express', '@nestjs/platform-fastify', 'reflect-metadata', 'rxjs']) {
    t.equal(pkg.peerDependenciesMeta[peer]?.optional, true, `${peer} is an optional peer`)
    t.notOk(pkg.dependencies[peer], `${peer} is not a hard dependency`)
  }
})

t.test('only request-locals/nestjs loads Nest: the core and every other adapter load without it, and the Koa entry without Koa', async (t) => {
  const dir = installedOutsideRepository(t)
  const out = await node('main.mjs', `
    import { createRequire } from 'node:module'
    import * as core from 'request-locals'
    import { koaRequestLocals } from 'request-locals/koa'
    import { expressRequestLocals } from 'request-locals/express'
    import { withRequestLocals } from 'request-locals/http'
    const require = createRequire(import.meta.url)
    const absent = ['koa', '@nestjs/common', '@nestjs/core'].filter((name) => { try { require.resolve(name); return false } catch { return true } })
    let nest
    try { await import('request-locals/nestjs') } catch (err) { nest = err.code + ' ' + /@nestjs\\/common/.test(err.message) }
    console.log(JSON.stringify({
      absent, nest,
      koa: typeof koaRequestLocals(), express: typeof expressRequestLocals(), http: typeof withRequestLocals(() => {}),
      core: typeof core.runWithLocals, cjs: typeof require('request-locals/koa').koaRequestLocals
    }))
  `, dir)
  t.same(JSON.parse(out), { absent: ['koa', '@nestjs/common', '@nestjs/core'], nest: 'ERR_MODULE_NOT_FOUND true', koa: 'function', express: 'function', http: 'function', core: 'function', cjs: 'function' })
  for (const entry of ['index.js', 'express.js', 'http.js', 'koa.js', 'fastify.js']) {
    t.notMatch(readFileSync(join(root, 'dist', entry), 'utf8'), /^import .*(@nestjs|'koa')/m, `dist/${entry} imports neither Nest nor Koa`)
  }
})

t.test('only request-locals/opentelemetry needs @opentelemetry/api; every other entry loads without it', async (t) => {
  const dir = installedOutsideRepository(t)
  const out = await node('main.mjs', `
    import { createRequire } from 'node:module'
    import * as core from 'request-locals'
    import * as propagation from 'request-locals/propagation'
    import * as http from 'request-locals/http'
    import * as pino from 'request-locals/pino'
    const require = createRequire(import.meta.url)
    let api = 'installed'
    try { require.resolve('@opentelemetry/api') } catch { api = 'absent' }
    let otel
    try { await import('request-locals/opentelemetry') } catch (err) { otel = err.code + ' ' + /@opentelemetry\\/api/.test(err.message) }
    const stop = propagation.propagateRequestLocals()
    const headers = core.runWithLocals({}, () => Object.keys(propagation.propagationHeaders()))
    stop()
    console.log(JSON.stringify({ api, otel, headers, http: typeof http.withRequestLocals, pino: typeof pino.logMixin }))
  `, dir)
  t.same(JSON.parse(out), { api: 'absent', otel: 'ERR_MODULE_NOT_FOUND true', headers: ['x-request-id'], http: 'function', pino: 'function' })
  t.notMatch(readFileSync(join(root, 'dist', 'propagation.js'), 'utf8'), /@opentelemetry/, 'the propagation entry does not load OpenTelemetry')
})

t.test('the Hono entry loads where Hono is not installed: it imports Hono\'s types only', async (t) => {
  const dir = installedOutsideRepository(t)
  const out = await node('main.mjs', `
    import { createRequire } from 'node:module'
    import { honoRequestLocals } from 'request-locals/hono'
    const require = createRequire(import.meta.url)
    let hono = 'installed'
    try { require.resolve('hono') } catch { hono = 'absent' }
    console.log(JSON.stringify({ hono, middleware: typeof honoRequestLocals() }))
  `, dir)
  t.same(JSON.parse(out), { hono: 'absent', middleware: 'function' })
  t.notMatch(readFileSync(join(root, 'dist', 'hono.js'), 'utf8'), /^import [^\n]*['"]hono['"]|require\(['"]hono['"]\)/m, 'no import of hono in dist/hono.js')
})

t.test('the Express and node:http entries load where Express is not installed', async (t) => {
  const dir = installedOutsideRepository(t)
  const out = await node('main.mjs', `
    import { createRequire } from 'node:module'
    import { expressRequestLocals } from 'request-locals/express'
    import { withRequestLocals } from 'request-locals/http'
    const require = createRequire(import.meta.url)
    let express = 'installed'
    try { require.resolve('express') } catch { express = 'absent' }
    console.log(JSON.stringify({
      express,
      middleware: typeof expressRequestLocals(),
      wrapper: typeof withRequestLocals(() => {}),
      cjs: typeof require('request-locals/express').expressRequestLocals
    }))
  `, dir)
  t.same(JSON.parse(out), { express: 'absent', middleware: 'function', wrapper: 'function', cjs: 'function' })
})
