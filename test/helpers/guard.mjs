// Runs a program that is not Node (redis-server) under a Node process that
// has exit-with-parent preloaded: when the test process is gone, or this
// process is stopped, the program is stopped too.
import { spawn } from 'node:child_process'

const [command, ...args] = process.argv.slice(2)
const child = spawn(command, args, { stdio: 'inherit' })
child.on('error', (err) => {
  process.stderr.write(`${command}: ${err.code === 'ENOENT' ? 'not on PATH' : err.message}\n`)
  process.exit(127)
})
child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)))
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill('SIGTERM'))
