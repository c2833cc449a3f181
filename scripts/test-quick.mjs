// The quick suite, for the edit loop and for the Node versions CI runs after
// the first: every unit and conformance test file, without coverage and
// without the slow ones that do not depend on the code under edit (soak,
// processes, the example app, the docs' code blocks, the packed files).
//   npm run test:quick [-- [--jobs=N] [path …]]
// A path (a test file or a folder under test/) runs only the files under it.
//
// The files are compiled once (scripts/compile-tests.mjs) and each runs in a
// plain `node` process of its own, as tap runs it, several at once, the
// longest of the last run first. The output is one line per file, a failed
// file's whole output, and tap's closing summary line over all of them,
// which .ci/run reads.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compileTests, outDir } from './compile-tests.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const excluded = ['test/processes/', 'test/reliability/soak.test.ts', 'test/example-app.test.ts', 'test/docs/', 'test/package-contents.test.ts']
// As in .taprc: how long one file may take, in seconds.
const timeout = 120

const args = process.argv.slice(2)
const jobsArg = args.find((arg) => arg.startsWith('--jobs='))
// The files wait on sockets, timers and child processes much of the time, so
// one more runs at once than there are CPUs.
const jobs = jobsArg === undefined ? availableParallelism() + 1 : Number(jobsArg.slice('--jobs='.length))
if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`test:quick: --jobs expects a whole number of at least 1; found ${JSON.stringify(jobsArg)}.`)
const unknown = args.find((arg) => arg.startsWith('-') && arg !== jobsArg)
if (unknown !== undefined) throw new Error(`test:quick takes --jobs=N and paths of test files or folders; found ${JSON.stringify(unknown)}.`)
const only = args.filter((arg) => !arg.startsWith('-')).map((path) => relative(root, join(process.cwd(), path)).split(sep).join('/').replace(/\/$/, ''))

const started = performance.now()
await compileTests()

const files = readdirSync(join(root, 'test'), { recursive: true })
  .map((file) => `test/${file.split(sep).join('/')}`)
  .filter((file) => file.endsWith('.test.ts') && !file.startsWith('test/types/'))
  .filter((file) => !excluded.some((prefix) => file.startsWith(prefix)))
  .filter((file) => only.length === 0 || only.some((path) => file === path || file.startsWith(`${path}/`)))
  .sort()
if (files.length === 0) throw new Error(`test:quick: no test file under ${only.map((path) => JSON.stringify(path)).join(', ')} (the quick suite leaves out ${excluded.join(', ')}).`)

// How long each file took last time, to start the longest first.
const timesPath = join(root, '.build', 'quick-times.json')
let lastTimes = {}
try { lastTimes = JSON.parse(readFileSync(timesPath, 'utf8')) } catch { /* first run */ }
const queue = [...files].sort((a, b) => (lastTimes[b] ?? Infinity) - (lastTimes[a] ?? Infinity))

const totals = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 }
const times = {}
const running = new Set()
let number = 0

/** Runs one compiled test file; resolves when it has exited and been reported. */
function run (file) {
  return new Promise((resolve) => {
    const compiled = join(outDir, file.replace(/\.ts$/, '.js'))
    const begin = performance.now()
    // detached: a timed-out file is killed with the processes it started.
    const child = spawn(process.execPath, ['--enable-source-maps', compiled], {
      cwd: root,
      detached: true,
      env: { ...process.env, TAP: '1', TAP_TIMEOUT: String(timeout) },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    running.add(child)
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    const timer = setTimeout(() => {
      output += `\n# test:quick: killed after ${timeout} s\n`
      kill(child)
    }, (timeout + 5) * 1000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      running.delete(child)
      const ms = performance.now() - begin
      times[file] = Math.round(ms)
      const summary = [...output.matchAll(/^# \{ total: \d+[^}]*\}$/gm)].at(-1)?.[0]
      const counts = {}
      for (const [, key, value] of summary?.matchAll(/(\w+): (\d+)/g) ?? []) counts[key] = Number(value)
      let failed = counts.fail ?? 0
      // A file that failed without a counted failure (a crash, a timeout, a
      // syntax error) or printed no summary counts as one failure.
      if ((code !== 0 || summary === undefined) && failed === 0) failed = 1
      for (const key of ['total', 'pass', 'skip', 'todo']) totals[key] += counts[key] ?? 0
      totals.fail += failed
      number += 1
      const status = code === 0 && failed === 0 ? 'ok' : 'not ok'
      if (status !== 'ok') {
        process.stdout.write(output.replace(/\n?$/, '\n'))
        if (signal !== null) process.stdout.write(`# exited on ${signal}\n`)
      }
      process.stdout.write(`${status} ${number} - ${file} # time=${(ms / 1000).toFixed(1)}s\n`)
      resolve()
    })
  })
}

/** Kills a test file's process and every process it started. */
function kill (child) {
  try { process.kill(-child.pid, 'SIGKILL') } catch { /* already gone */ }
}

function stopAll () {
  for (const child of running) kill(child)
}
process.on('SIGINT', () => { stopAll(); process.exit(130) })
process.on('SIGTERM', () => { stopAll(); process.exit(143) })

async function worker () {
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) await run(file)
}
await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker))

// Files that no longer exist are forgotten; those not run this time are kept.
const kept = Object.fromEntries(Object.entries(lastTimes).filter(([file]) => existsSync(join(root, file))))
writeFileSync(timesPath, `${JSON.stringify({ ...kept, ...times }, null, 2)}\n`)
const shown = Object.entries(totals).filter(([key, value]) => value > 0 || key === 'total' || key === 'pass').map(([key, value]) => `${key}: ${value}`)
console.log(`# { ${shown.join(', ')} }`)
console.log(`# ${files.length} file${files.length === 1 ? '' : 's'} in ${((performance.now() - started) / 1000).toFixed(1)} s, ${jobs} at a time`)
process.exitCode = totals.fail === 0 ? 0 : 1
