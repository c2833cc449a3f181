// Runs tap with the arguments given. On a terminal, tap's own reporter; elsewhere
// (CI logs, pipes) one line per test file, the full TAP of a file only when
// it failed, and tap's closing summary.
import { spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

// tap runs each test file in a process of its own, as many at once as
// --jobs; its default leaves one CPU free, which on a 2-core machine means
// one file at a time. The files wait on sockets, timers and child processes
// much of the time, so at least two run at once. A --jobs given here wins.
const jobs = Math.max(2, availableParallelism() - 1)
const args = [`--jobs=${jobs}`, ...process.argv.slice(2)]
const tap = fileURLToPath(new URL('../node_modules/.bin/tap', import.meta.url))
if (process.stdout.isTTY) {
  const child = spawn(tap, args, { stdio: 'inherit' })
  child.on('exit', (code, signal) => { process.exitCode = code ?? (signal === null ? 1 : 128) })
} else {
  const child = spawn(tap, ['--reporter=tap', ...args], { stdio: ['inherit', 'pipe', 'inherit'] })
  let block = []
  const lines = createInterface({ input: child.stdout })
  lines.on('line', (line) => {
    if (line.startsWith('ok ') || line.startsWith('not ok ')) {
      // A top-level result closes the block of one test file.
      if (line.startsWith('not ok ') || block.some((l) => /^\s*not ok /.test(l) && !/# (TODO|SKIP)/.test(l))) {
        for (const l of block) console.log(l)
      }
      console.log(line)
      block = []
    } else if (line.startsWith('# Subtest: ')) {
      // the file's name comes again on its result line
    } else if (line.startsWith('#') || line.startsWith('1..') || line.startsWith('TAP version')) {
      // Lines outside any file's TAP: tap's coverage report.
      for (const l of block.filter((l) => !l.startsWith('    '))) console.log(l)
      block = []
      console.log(line)
    } else {
      block.push(line)
    }
  })
  // What tap prints after the last result: the coverage report, when short of 100%.
  lines.on('close', () => { for (const l of block) console.log(l) })
  child.on('exit', (code, signal) => { process.exitCode = code ?? (signal === null ? 1 : 128) })
}
