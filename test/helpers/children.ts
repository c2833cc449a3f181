import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

// Every process a test starts goes through spawnTied, so that none is left
// behind on any path:
// - each runs in a process group of its own, and stopping it ends the whole
//   group (tsx, a server and whatever they started), SIGKILL after a grace;
// - when the test process exits with children still running (a failed
//   assertion, a thrown error, tap's bail-out), they are killed and the exit
//   code says so;
// - when the test process is killed outright (a timeout's SIGKILL), each
//   Node child notices its parent is gone (exit-with-parent.mjs, preloaded
//   through NODE_OPTIONS) and ends itself; programs that are not Node run
//   under guard.mjs, which does the same for them.

const helpers = import.meta.dirname
const preload = `--import=${pathToFileURL(resolve(helpers, 'exit-with-parent.mjs')).href}`
const live = new Set<ChildProcess>()

function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), signal)
  } catch {
    // The group is gone already.
  }
}

process.once('exit', function killLeftChildren () {
  if (live.size === 0) return
  const left = [...live].map((child) => child.spawnargs.join(' '))
  for (const child of live) killGroup(child, 'SIGKILL')
  process.stderr.write(`A test left ${left.length} child process(es) running, now killed: ${left.join('; ')}\n`)
  process.exitCode = 1
})

/** The environment a tied child gets: `env`, plus the exit-with-parent preload. */
function tiedEnv (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const options = env.NODE_OPTIONS ?? ''
  return { ...env, NODE_OPTIONS: options.includes(preload) ? options : `${options} ${preload}`.trim() }
}

/**
 * Starts a process tied to this test process (see above). `command` is run
 * directly when it is Node (`process.execPath`), else under guard.mjs.
 */
export function spawnTied (command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const [file, argv] = command === process.execPath ? [command, args] : [process.execPath, [resolve(helpers, 'guard.mjs'), command, ...args]]
  const child = spawn(file, argv, { ...options, env: tiedEnv(options.env), detached: true })
  live.add(child)
  child.once('exit', () => live.delete(child))
  child.once('error', () => live.delete(child))
  return child
}

/** Stops a tied child and its group: SIGTERM, then SIGKILL after `graceMs`. Resolves once it exited. */
export async function stopTied (child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    killGroup(child, 'SIGKILL') // grandchildren it left, if any
    return
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  killGroup(child, 'SIGTERM')
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
  killGroup(child, 'SIGKILL')
}

/** The tied children still running (for tests of this helper). */
export function liveChildren (): number {
  return live.size
}
