import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, normalize, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import { installCopies } from './helpers/installed.js'

// What `npm publish` would ship, checked against the exports map (so entry
// points added later are covered without editing this file): exactly the
// README, the LICENSE, package.json, and the .js and .d.ts files the entry
// points load, nothing else. Loads the built dist/ (npm test builds first).

const root = resolve(import.meta.dirname, '..')
const run = promisify(execFile)
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string, default: string }>
  typesVersions: Record<string, Record<string, string[]>>
}
const entries = Object.entries(pkg.exports).filter(([subpath]) => subpath !== './package.json') as Array<[string, { types: string, default: string }]>

// The files a module loads, followed through its relative imports.
function closure (start: string[]): Set<string> {
  const seen = new Set<string>()
  const queue = [...start]
  while (queue.length > 0) {
    const file = normalize(queue.pop()!)
    if (seen.has(file)) continue
    seen.add(file)
    const source = readFileSync(join(root, file), 'utf8')
    for (const [, specifier] of source.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = relative(root, resolve(root, dirname(file), specifier))
      queue.push(file.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target)
    }
  }
  return seen
}

t.test('npm pack ships exactly the README, the LICENSE, package.json and the files the entry points load', async (t) => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, timeout: 60_000 })
  const packed = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0].files.map(({ path }) => path).sort()
  // tsc emits each module as a pair, and a module one side loads without the
  // other (a type-only module, a helper no declaration names) ships as a pair.
  const loaded = closure(entries.flatMap(([, { types, default: js }]) => [types, js]))
  const needed = new Set([...loaded].flatMap((file) => {
    const base = file.replace(/\.d\.ts$|\.js$/, '')
    return [`${base}.js`, `${base}.d.ts`]
  }))
  t.same(packed, ['LICENSE', 'README.md', 'package.json', ...needed].sort())
  for (const [subpath, { types, default: js }] of entries) {
    t.ok(packed.includes(normalize(types)) && packed.includes(normalize(js)), `${subpath}: its .js and .d.ts are packed`)
  }
})

// TypeScript's node10 resolution ignores "exports": the subpaths resolve
// through typesVersions, the longest matching pattern first.
function node10Types (subpath: string): string | undefined {
  const patterns = pkg.typesVersions['*']
  const keys = Object.keys(patterns).filter((key) => key === subpath || (key.endsWith('*') && subpath.startsWith(key.slice(0, -1))))
  const key = keys.sort((a, b) => b.length - a.length)[0]
  if (key === undefined) return undefined
  return normalize(patterns[key][0].replace('*', key.endsWith('*') ? subpath.slice(key.length - 1) : ''))
}

t.test('every subpath resolves to its declarations under moduleResolution node10 (typesVersions)', async (t) => {
  for (const [subpath, { types }] of entries) {
    if (subpath === '.') continue
    t.equal(node10Types(subpath.slice(2)), normalize(types), subpath)
  }
  t.equal(node10Types('dist/index.d.ts'), normalize('dist/index.d.ts'), 'the root "types" field still resolves')
  t.equal(node10Types('package.json'), 'package.json')
})

t.test('the declarations type-check without @types/express, under node10 and nodenext resolution', { timeout: 100_000 }, async (t) => {
  const dir = installCopies(t, [{ name: 'request-locals' }])
  // The peers whose types the other entry points name; express and
  // @types/express deliberately absent (Connect users).
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true })
  mkdirSync(join(dir, 'node_modules', '@opentelemetry'), { recursive: true })
  for (const name of ['@types/node', 'fastify', 'fastify-plugin', 'pino', '@opentelemetry/api']) {
    if (existsSync(join(root, 'node_modules', name))) symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir')
  }
  // The root and the node:http-based entries: the ones a Connect user loads.
  // (attw checks every entry's resolution; compiling fastify's and pino's
  // declarations too would take minutes on a busy machine.)
  const light = entries.map(([subpath]) => subpath).filter((subpath) => ['.', './express', './http', './propagation', './testing'].includes(subpath))
  const imports = light.map((subpath, i) => `import * as entry${i} from '${join('request-locals', subpath)}'\nexport { entry${i} }`).join('\n')
  writeFileSync(join(dir, 'main.ts'), `${imports}\nimport { expressRequestLocals } from 'request-locals/express'\nexport const middleware = expressRequestLocals({ defaults: (req) => ({ url: req.url }) })\n`)
  // Both resolutions in one `tsc --build`, which loads the libraries once.
  // ES2022 and esModuleInterop, as any Node 20 project has (pino's own
  // declarations need the latter).
  const references = []
  for (const [module, resolution] of [['commonjs', 'node10'], ['nodenext', 'nodenext']]) {
    const compilerOptions = { strict: true, skipLibCheck: false, noEmit: true, target: 'es2022', esModuleInterop: true, types: ['node'], module, moduleResolution: resolution }
    writeFileSync(join(dir, `tsconfig.${resolution}.json`), JSON.stringify({ compilerOptions, files: ['main.ts'] }))
    references.push({ path: `./tsconfig.${resolution}.json` })
  }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ files: [], references }))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = await run(process.execPath, [tsc, '--build', 'tsconfig.json'], { cwd: dir, timeout: 90_000 }).then(() => 'compiles', (err: { stdout: string }) => err.stdout)
  t.equal(result, 'compiles', 'with moduleResolution node10 and nodenext, skipLibCheck off')
})
