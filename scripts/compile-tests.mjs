// Compiles src/ and test/ to JavaScript once, under .build/quick/, for the
// quick suite (scripts/test-quick.mjs): loading TypeScript in every test
// process costs about 2.5 s of CPU per file, more than most files take to run.
// The tree mirrors the repository, so that relative imports and paths resolve
// as they do from the sources: test/'s other files (TLS keys, .mjs helpers)
// are copied, and everything else at the top (package.json, dist/,
// node_modules/, docs/, bench/ …) is linked.
// esbuild compiles file by file, as `isolatedModules` promises is safe, and
// checks no types: `npm run typecheck` does.
import { build } from 'esbuild'
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Where the compiled tree goes: test/x.test.ts becomes <outDir>/test/x.test.js. */
export const outDir = join(root, '.build', 'quick')

// test/types holds type-level tests, which tsc checks and nothing runs.
const skipped = new Set([join(root, 'test', 'types')])

function * files (dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (skipped.has(path)) continue
    if (entry.isDirectory()) yield * files(path)
    else yield path
  }
}

/** Compiles the sources and tests into {@link outDir}, replacing what was there. */
export async function compileTests () {
  rmSync(outDir, { recursive: true, force: true })
  const all = [...files(join(root, 'src')), ...files(join(root, 'test'))]
  const sources = all.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'))
  await build({
    entryPoints: sources,
    outdir: outDir,
    outbase: root,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    tsconfig: join(root, 'tsconfig.json'),
    logLevel: 'warning'
  })
  for (const path of all.filter((path) => !path.endsWith('.ts'))) {
    const target = join(outDir, relative(root, path))
    mkdirSync(join(target, '..'), { recursive: true })
    cpSync(path, target)
  }
  for (const name of readdirSync(root)) {
    if (!['src', 'test', '.build', '.git'].includes(name)) symlinkSync(join(root, name), join(outDir, name))
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await compileTests()
