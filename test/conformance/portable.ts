import { test } from 'node:test'
import { core, targets } from './adapters.js'
import { conformance } from './cases.js'
import { coreConformance } from './core.js'
import { currentRuntime, withTeardowns } from './harness.js'

// The conformance suite for runtimes tap does not run on: `bun test` and
// `deno test` both run node:test's `test`, and run a file's tests one after
// another, as the cases need (each holds hundreds of sockets). Only the
// targets that declare this runtime are loaded. On Node, tap runs the same
// cases (conformance-1/2/3.test.ts, through run-under-tap.ts); `node --test` runs this file too.
const runtime = currentRuntime()
const only = process.env.CONFORMANCE_TARGETS?.split(',')
const timeoutMs = Number(process.env.CONFORMANCE_TIMEOUT_MS ?? 60_000)

if (core.runtimes[runtime] === true && (only === undefined || only.includes(core.name))) {
  coreConformance((name, fn) => { test(`${core.name}: ${name}`, () => withTeardowns(fn, timeoutMs)) })
}

for (const target of targets) {
  if (target.runtimes[runtime] !== true) continue
  if (only !== undefined && !only.includes(target.name)) continue
  const adapter = await target.load()
  conformance((name, fn) => { test(`${target.name}: ${name}`, () => withTeardowns(fn, timeoutMs)) }, adapter)
}
