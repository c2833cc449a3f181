import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

// Installs built copies of the package (dist/) in an application folder in
// the system's temp folder: outside the repository, so that nothing resolves
// through the repository's own node_modules unless linked on purpose.

const root = resolve(import.meta.dirname, '..', '..')
const run = promisify(execFile)

/** One copy to install: its package name and the version its package.json claims. */
export interface Copy {
  name: string
  version?: string
}

/**
 * A fresh application folder holding each copy under its name, plus links to
 * the repository's installs of `linked` (e.g. express) so scripts can load them.
 */
export function installCopies (t: Test, copies: readonly Copy[], linked: readonly string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'request-locals-copies-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>
  for (const { name, version } of copies) {
    const target = join(dir, 'node_modules', name)
    mkdirSync(target, { recursive: true })
    cpSync(join(root, 'dist'), join(target, 'dist'), { recursive: true, dereference: true })
    writeFileSync(join(target, 'package.json'), JSON.stringify({ ...pkg, name, version: version ?? pkg.version }))
  }
  for (const name of linked) symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir')
  return dir
}

/** Runs `source` as an ES module in `dir` and returns its trimmed output; killed after 20 s. */
export async function runModule (dir: string, source: string): Promise<string> {
  const path = join(dir, `main-${Math.random().toString(36).slice(2)}.mjs`)
  writeFileSync(path, source)
  const { stdout } = await run(process.execPath, [path], { cwd: dir, timeout: 20_000, killSignal: 'SIGKILL' })
  return stdout.trim()
}
