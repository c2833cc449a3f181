// `npm run docs:check`: fails when TypeDoc reports any warning (the config
// sets treatWarningsAsErrors) or when the checked-in API reference in
// docs/api/ differs from a fresh build of the current sources. Fix with
// `npm run docs` and commit docs/api/.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const checkedIn = join(root, 'docs', 'api')
const fresh = mkdtempSync(join(tmpdir(), 'request-locals-api-'))

try {
  const typedoc = join(root, 'node_modules', 'typedoc', 'bin', 'typedoc')
  const run = spawnSync(process.execPath, [typedoc, '--out', fresh], { cwd: root, stdio: 'inherit' })
  if (run.status !== 0) {
    console.error('docs:check: TypeDoc failed or warned (see above); the API reference must build without warnings.')
    process.exit(1)
  }
  const problems = compare(listFiles(fresh), listFiles(checkedIn))
  if (problems.length > 0) {
    console.error(`docs:check: docs/api/ is out of date (${problems.length} file(s)):`)
    for (const line of problems) console.error(`  ${line}`)
    console.error('Run `npm run docs` and commit docs/api/.')
    process.exit(1)
  }
  console.log('docs:check: docs/api/ matches a fresh build, no TypeDoc warnings')
} finally {
  rmSync(fresh, { recursive: true, force: true })
}

function listFiles (dir) {
  const files = new Map()
  let entries
  try {
    entries = readdirSync(dir, { recursive: true, withFileTypes: true })
  } catch {
    return files
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath ?? entry.path, entry.name)
    files.set(relative(dir, path), readFileSync(path, 'utf8'))
  }
  return files
}

function compare (expected, actual) {
  const problems = []
  for (const [file, text] of expected) {
    if (!actual.has(file)) problems.push(`missing: docs/api/${file}`)
    else if (actual.get(file) !== text) problems.push(`differs: docs/api/${file}`)
  }
  for (const file of actual.keys()) {
    if (!expected.has(file)) problems.push(`not generated any more: docs/api/${file}`)
  }
  return problems.sort()
}
