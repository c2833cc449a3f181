import t from 'tap'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { spawnTied, stopTied } from '../helpers/children.js'

// No test leaves a process behind, on any path. Each case below starts a
// process that starts another which would run for ever, ends the first in
// a way a test run can end (killed outright, or exiting without cleaning
// up), and waits for the pipe both share to close: it closes only once the
// last process holding it is gone, so no timer decides the outcome.

const root = resolve(import.meta.dirname, '../..')
const forever = 'setInterval(() => {}, 1000); console.log(process.pid)'

async function closedWithin (stream: NodeJS.ReadableStream, ms: number): Promise<boolean> {
  stream.resume()
  const timer = setTimeout(() => stream.emit('timeout'), ms)
  const [event] = await Promise.race([once(stream, 'end').then(() => ['end']), once(stream, 'timeout').then(() => ['timeout'])])
  clearTimeout(timer)
  return event === 'end'
}

// A process killed by its parent's exit hook is reaped by init at once; its
// pid is polled briefly, as nothing else can be waited on for it.
async function gone (pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return true
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return false
}

t.test('a process whose test process is killed outright (SIGKILL) ends with it, with what it started', async (t) => {
  // Stands for the test process: it starts a child that shares its stdout.
  const parent = spawnTied(process.execPath, ['-e', `
    const { spawn } = require('node:child_process')
    spawn(process.execPath, ['-e', ${JSON.stringify(forever)}], { stdio: ['ignore', 'inherit', 'inherit'] })
  `], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => stopTied(parent))
  const [pid] = await once(parent.stdout!, 'data') as [Buffer]
  t.match(pid.toString(), /^\d+\n$/, 'the grandchild runs')
  process.kill(parent.pid as number, 'SIGKILL') // the parent only, not its group
  t.ok(await closedWithin(parent.stdout!, 10_000), 'the orphan noticed and ended')
})

t.test('a test process that exits with a child still running: the child is killed and the exit code says so', async (t) => {
  const children = pathToFileURL(resolve(root, 'test/helpers/children.ts')).href
  const script = spawnTied(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    import { spawnTied } from ${JSON.stringify(children)}
    spawnTied(process.execPath, ['-e', ${JSON.stringify(forever)}], { stdio: ['ignore', 'inherit', 'inherit'] })
    process.stdin.once('data', () => process.exit(0)) // as a test that forgot its teardown
  `], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => stopTied(script))
  let stderr = ''
  script.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [pid] = await once(script.stdout!, 'data') as [Buffer]
  script.stdin!.end('exit\n')
  const [code] = await once(script, 'exit') as [number]
  t.equal(code, 1, 'the run fails')
  t.match(stderr, /A test left 1 child process\(es\) running, now killed/)
  t.ok(await gone(Number(pid.toString())), 'the child is gone')
})
