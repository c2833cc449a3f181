import { spawnTied, stopTied } from './children.js'
import { createInterface } from 'node:readline'
import { resolve } from 'node:path'
import type { LogLine } from './logs.js'

// A fixture run as its own Node process (through tsx), as a service is run:
// its pino lines are read from its stdout, and tests wait on those lines
// rather than on time.

const root = resolve(import.meta.dirname, '../..')

export interface LoggedProcess {
  /** Every stdout line, parsed, in the order written. */
  lines: LogLine[]
  /** Every stdout line as written, for what parsing would hide. */
  raw: string[]
  /** Resolves with the lines once `predicate` holds; rejects if the process exits first, or after `timeoutMs` (30 s). */
  waitFor: (what: string, predicate: (lines: LogLine[]) => boolean, timeoutMs?: number) => Promise<LogLine[]>
  stop: () => Promise<void>
}

// tap records coverage in child processes too. A fixture runs src/ through
// tsx, whose source maps differ from tap's: merged, the two garble the
// coverage of src/. So coverage comes from the test process alone.
const noCoverage = { _TAPJS_PROCESSINFO_COVERAGE_: '0' }

export function startLogged (fixture: string, env: Record<string, string>): LoggedProcess {
  const child = spawnTied(process.execPath, ['--import', 'tsx', fixture], {
    cwd: root,
    env: { ...process.env, ...noCoverage, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: LogLine[] = []
  const raw: string[] = []
  const waiters = new Set<() => void>()
  let stderr = ''
  let exit: string | undefined
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  createInterface({ input: child.stdout! }).on('line', (line) => {
    raw.push(line)
    lines.push(JSON.parse(line) as LogLine)
    for (const check of waiters) check()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    exit = `${fixture} exited (${String(code ?? signal)}): ${stderr}`
    for (const check of waiters) check()
    resolve()
  }))
  return {
    lines,
    raw,
    waitFor: (what, predicate, timeoutMs = 30_000) => new Promise((resolve, reject) => {
      // A bound, so that a fixture that never gets there (a dead server it
      // keeps reconnecting to) fails the test with its output, not a hang.
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`waiting for ${what}: nothing after ${timeoutMs} ms from ${fixture}; its stderr: ${stderr.slice(-2000)}`))
      }, timeoutMs)
      const check = (): void => {
        if (predicate(lines)) {
          waiters.delete(check)
          clearTimeout(timer)
          resolve(lines)
        } else if (exit !== undefined) {
          waiters.delete(check)
          clearTimeout(timer)
          reject(new Error(`waiting for ${what}: ${exit}`))
        }
      }
      waiters.add(check)
      check()
    }),
    stop: async () => {
      await stopTied(child)
      await exited
    }
  }
}
