import type { Test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import ts from 'typescript'

// Helpers of the code-block tests (code-blocks-*.test.ts): every ```ts and ```typescript block of README.md and docs/**/*.md (the
// generated docs/api/ aside) is type-checked here against the built
// package's types, as a user's strict project would compile it, so that a
// renamed option or a changed signature fails the test run instead of
// leaving the docs wrong. The conventions for fragments (hidden preambles,
// skipped blocks) are described in docs/CONTRIBUTING.md.
//
// `npm test` builds dist/ first (the pretest script): the blocks import
// 'request-locals' by name, which resolves to the package itself through its
// exports map, exactly as an application's import would.

export const root = resolve(import.meta.dirname, '..', '..')

const compilerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  noImplicitOverride: true,
  noEmit: true,
  skipLibCheck: true,
  esModuleInterop: true,
  // NestJS examples use its (legacy) decorators, as Nest projects compile them.
  experimentalDecorators: true,
  types: ['node']
}

export interface CodeBlock {
  /** The markdown file, relative to the repository root. */
  readonly file: string
  /** The 1-based line of the block's first line of code. */
  readonly line: number
  /** The TypeScript compiled: preambles, then the block's code. */
  readonly source: string
  /** Lines of `source` before the block's own code (the preambles). */
  readonly preambleLines: number
  /** Set when the block carries `<!-- ts-skip: reason -->`. */
  readonly skip?: string
}

// <!-- ts-preamble … -->       hidden code put before the next block only
// <!-- ts-doc-preamble … -->   hidden code put before every later block of the file
// <!-- ts-skip: reason -->     the next block is not compiled (the reason is required)
const directive = /^<!--\s*(ts-preamble|ts-doc-preamble|ts-skip)(?::|\s)([\s\S]*?)-->\s*$/

export function extractBlocks (file: string, markdown: string): CodeBlock[] {
  const lines = markdown.split('\n')
  const blocks: CodeBlock[] = []
  const docPreamble: string[] = []
  let preamble: string | undefined
  let skip: string | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    if (line.trimStart().startsWith('<!--')) {
      // A comment may span several lines; it ends at the first '-->'.
      let end = i
      while (end < lines.length && !(lines[end] ?? '').includes('-->')) end++
      const comment = lines.slice(i, end + 1).map((l) => l.trim()).join('\n')
      const match = directive.exec(comment)
      if (match !== null) {
        const [, kind, body = ''] = match
        if (kind === 'ts-doc-preamble') docPreamble.push(body.trim())
        else if (kind === 'ts-preamble') preamble = body.trim()
        else skip = body.trim() === '' ? 'no reason given' : body.trim()
      }
      i = end
      continue
    }
    const fence = /^(\s*)(`{3,}|~{3,})\s*(ts|typescript)\s*$/.exec(line)
    if (fence === null) {
      // A directive applies to the very next block: any other text in
      // between cancels it (blank lines do not).
      if (line.trim() !== '' && !/^\s*(`{3,}|~{3,})/.test(line)) { preamble = undefined; skip = undefined }
      if (/^\s*(`{3,}|~{3,})/.test(line)) {
        // Another language's block: skip to its closing fence.
        const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1] ?? '```'
        i++
        while (i < lines.length && !(lines[i] ?? '').trim().startsWith(marker)) i++
        preamble = undefined
        skip = undefined
      }
      continue
    }
    const indent = fence[1]?.length ?? 0
    const marker = fence[2] ?? '```'
    const code: string[] = []
    const start = i + 2
    i++
    while (i < lines.length && !(lines[i] ?? '').trim().startsWith(marker)) {
      code.push((lines[i] ?? '').slice(indent))
      i++
    }
    const before = [...docPreamble, ...(preamble === undefined ? [] : [preamble])].join('\n')
    const head = before === '' ? '' : before + '\n'
    blocks.push({
      file,
      line: start,
      // `export {}` makes every block a module of its own, so two blocks of
      // one file may both declare `const app`.
      source: head + code.join('\n') + '\nexport {}\n',
      preambleLines: head === '' ? 0 : head.split('\n').length - 1,
      ...(skip === undefined ? {} : { skip })
    })
    preamble = undefined
    skip = undefined
  }
  return blocks
}

// Parsed library files are shared by every program of the run: only the
// blocks change, so each markdown file compiles in a fraction of a second.
const sourceFiles = new Map<string, ts.SourceFile>()

/**
 * Compiles the blocks of one markdown file as one program (so a `declare
 * module 'request-locals'` augmentation in one block holds for the blocks
 * after it, as it would in one application) and returns the diagnostics as
 * `file:line: message`, pointing into the markdown.
 */
export function checkBlocks (blocks: readonly CodeBlock[], options: ts.CompilerOptions = compilerOptions): string[] {
  const checked = blocks.filter((block) => block.skip === undefined)
  if (checked.length === 0) return []
  // Virtual files inside the repository, so that 'request-locals' resolves to
  // this package (a self-reference through package.json's exports) and the
  // other imports to its node_modules.
  const virtual = new Map<string, CodeBlock>()
  checked.forEach((block, n) => {
    const name = block.file.replace(/[^A-Za-z0-9]+/g, '-')
    virtual.set(join(root, 'test', 'docs', 'blocks', `${name}-${n + 1}-line-${block.line}.mts`), block)
  })
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (fileName, languageVersion, onError) => {
    const block = virtual.get(fileName)
    if (block !== undefined) return ts.createSourceFile(fileName, block.source, languageVersion, true)
    let cached = sourceFiles.get(fileName)
    if (cached === undefined) {
      cached = getSourceFile(fileName, languageVersion, onError)
      if (cached !== undefined) sourceFiles.set(fileName, cached)
    }
    return cached
  }
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (fileName) => virtual.has(fileName) || fileExists(fileName)
  const readFile = host.readFile.bind(host)
  host.readFile = (fileName) => virtual.get(fileName)?.source ?? readFile(fileName)

  const program = ts.createProgram([...virtual.keys()], options, host)
  // Only the blocks are checked: the libraries' declarations are what the
  // blocks compile against, not what this test is about (skipLibCheck).
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...[...virtual.keys()].flatMap((fileName) => {
      const file = program.getSourceFile(fileName)
      return file === undefined ? [] : [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]
    })
  ]
  return diagnostics.map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
    const block = diagnostic.file === undefined ? undefined : virtual.get(diagnostic.file.fileName)
    if (diagnostic.file === undefined || diagnostic.start === undefined) return `(global): TS${diagnostic.code}: ${message}`
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
    if (block === undefined) return `${relative(root, diagnostic.file.fileName)}:${line + 1}: TS${diagnostic.code}: ${message}`
    const where = line < block.preambleLines ? `${block.file}:${block.line} (preamble)` : `${block.file}:${block.line + line - block.preambleLines}`
    return `${where}: TS${diagnostic.code}: ${message}`
  })
}

export function markdownFiles (): string[] {
  const files = ['README.md', 'example-app/README.md']
  for (const entry of readdirSync(join(root, 'docs'), { recursive: true, withFileTypes: true })) {
    const path = relative(root, join(entry.parentPath, entry.name))
    if (entry.isFile() && path.endsWith('.md') && !path.startsWith(join('docs', 'api'))) files.push(path)
  }
  return files.sort()
}

/**
 * Compiles the markdown files of shard `shard` (0-based) of `shards`: the
 * files are dealt round-robin, so that each test process stays well within
 * tap's timeout on a loaded machine.
 */
export function testMarkdownFiles (t: Test, shard: number, shards: number): void {
  markdownFiles().filter((_file, index) => index % shards === shard).forEach((file) => {
    t.test(file, async (t) => {
      const blocks = extractBlocks(file, readFileSync(join(root, file), 'utf8'))
      const errors = checkBlocks(blocks)
      // In full, one per line: tap's diff would cut long compiler messages.
      for (const error of errors) t.comment(error)
      t.strictSame(errors, [], `${blocks.filter((b) => b.skip === undefined).length} TypeScript block(s) compile`)
      for (const block of blocks) {
        if (block.skip !== undefined) t.comment(`${file}:${block.line}: not compiled: ${block.skip}`)
      }
    })
  })
}
