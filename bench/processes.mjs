// CPU pinning and server processes. The load generator (this process) runs
// on core 0 and each server on core 1, so that neither steals the other's
// CPU and every variant gets the same single core.
import { execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const loadCore = 0
export const serverCore = 1
const serverScript = fileURLToPath(new URL('./server.mjs', import.meta.url))

function hasTaskset () {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const pinning = hasTaskset()

/** Pins every thread of this process (autocannon runs in it) to the load core. */
export function pinSelf () {
  if (!pinning) {
    console.error('taskset not found: running unpinned, figures will be noisier.')
    return
  }
  execFileSync('taskset', ['-a', '-p', '-c', String(loadCore), String(process.pid)], { stdio: 'ignore' })
}

function pinned (command, args, pin) {
  return pin ? ['taskset', ['-c', String(serverCore), command, ...args]] : [command, args]
}

/**
 * Starts one variant's server on `node` (a binary path) and resolves once it
 * listens. `nodeFlags` go before the script (e.g. --expose-gc, --cpu-prof).
 * Another harness (the soak) starts its own server the same way, on IPC,
 * reporting `{ port }` once listening: `script` and `args` name it, and
 * `pin: false` leaves it free to run on any core.
 */
export function startServer (node, variant, nodeFlags = [], { script = serverScript, args: scriptArgs = [], pin = pinning } = {}) {
  const [command, args] = pinned(node, [...nodeFlags, script, variant, ...scriptArgs], pin)
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    function onExit (code, signal) {
      reject(new Error(`The ${variant} server on ${node} exited before listening (code ${code}, signal ${signal}).`))
    }
    child.once('exit', onExit)
    child.once('error', reject)
    child.once('message', function onListening (message) {
      child.off('exit', onExit)
      resolve(serverHandle(child, message.port))
    })
  })
}

function serverHandle (child, port) {
  function ask (question, answer) {
    return new Promise((resolve) => {
      child.once('message', (message) => resolve(message[answer]))
      child.send(question)
    })
  }
  return {
    port,
    /** Sends `question` and resolves with the `answer` field of the reply. */
    ask,
    /** Resolves once the process has exited, with its exit code (null if killed). */
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    /** The server's heap used after two forced GCs, in bytes. */
    heapUsed: () => ask('heap', 'heapUsed'),
    /** The CPU time (user + system, µs) the server has used so far. */
    cpuTime: () => ask('cpu', 'cpu'),
    /** Disconnecting makes the server exit; resolves once it has. */
    stop () {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
      return new Promise((resolve) => {
        child.once('exit', resolve)
        child.disconnect()
      })
    }
  }
}
