import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

// `npm run bench -- --smoke`: one short round of every variant, scenario and
// phase, so that the bench cannot rot unnoticed (a variant that no longer
// starts or answers, a chart that no longer renders). It asserts what ran,
// never how fast. It runs the built package (dist/), which pretest builds.
const root = resolve(import.meta.dirname, '../..')
t.setTimeout(300000)

interface Measured { ratio: number[], rps: number[] }
interface Results {
  variants: Array<{ name: string, label: string }>
  scenarios: Array<{ name: string }>
  http: Record<string, Record<string, Record<string, Measured>>>
  memory: unknown[][]
  micro: Record<string, Record<string, number>>
}

/** Runs a bench script with this Node, as CI would; resolves with its exit code and output. */
function runScript (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, maxBuffer: 2 ** 24, env: { ...process.env, CI: 'true' } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
    })
  })
}

t.test('every variant starts and answers every scenario, and the chart renders', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'request-locals-bench-smoke-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const files = { json: join(dir, 'results.json'), svg: join(dir, 'results.svg'), out: join(dir, 'results.md') }
  const { code, stdout, stderr } = await runScript(['bench/run.mjs', '--smoke', '--json', files.json, '--svg', files.svg, '--out', files.out])
  t.equal(code, 0, 'the bench exits cleanly', { stderr })
  t.equal(stderr, '', 'nothing but the report is printed in CI')
  const results = JSON.parse(readFileSync(files.json, 'utf8')) as Results
  const [version] = Object.keys(results.http)
  t.equal(version, process.version)
  const names = results.variants.map((v) => v.name)
  for (const expected of ['fastify-request-locals', 'express-request-locals', 'express4-request-locals', 'http-request-locals', 'fastify-hand-rolled-als', 'express-hand-rolled-als', 'http-hand-rolled-als']) {
    t.ok(names.includes(expected), `${expected} ran`)
  }
  const missing = results.scenarios.flatMap((s) => names.filter((name) => {
    const m = results.http[version!]![s.name]![name]
    return m === undefined || m.rps.length !== 1 || !(m.rps[0]! > 0) || !(m.ratio[0]! > 0)
  }).map((name) => `${s.name} ${name}`))
  t.same(missing, [], 'every variant answered every scenario')
  t.equal(results.memory.length, names.filter((name) => name.includes('request-locals')).length, 'a heap reading per request-locals variant')
  t.ok(Object.keys(results.micro[version!] ?? {}).length > 0, 'the micro-benchmarks ran')
  const svg = readFileSync(files.svg, 'utf8')
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.ok(svg.trimEnd().endsWith('</svg>'))
  t.equal((svg.match(/<rect [^>]*><title>/g) ?? []).length, results.scenarios.length * names.filter((name) => !name.endsWith('-bare')).length, 'a bar per variant and scenario')
  t.match(readFileSync(files.out, 'utf8'), /### HTTP on v\d+/)
  t.match(stdout, /### HTTP on v\d+/, 'the report is printed')
})

t.test('the idle-connection and inline-cache scripts give a figure per variant', async (t) => {
  const idle = await runScript(['bench/idle-connections.mjs', 'express-hand-rolled-als,express-request-locals', '20'])
  t.equal(idle.code, 0, 'idle-connections.mjs exits cleanly', { stderr: idle.stderr })
  t.match(idle.stdout, /express-hand-rolled-als: -?\d+ bytes per idle connection \(20 connections\)\n.*express-request-locals: -?\d+ bytes per idle connection/)
  const caches = await runScript(['bench/inline-caches.mjs', 'express-request-locals', 'locals', '200'])
  t.equal(caches.code, 0, 'inline-caches.mjs exits cleanly', { stderr: caches.stderr })
  t.match(caches.stdout, /express-request-locals: \d+\.\d inline-cache misses per request, \d+\.\d\d in request-locals/)
})
