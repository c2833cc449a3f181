import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

// Every relative link of the hand-written docs (README.md, CHANGELOG.md,
// RELIABILITY.md, example-app/README.md, docs/**/*.md but the generated
// docs/api/) points to a file that exists, and a `#fragment` to a heading of
// that file: a reader gets from the README to any guide or API page in one
// click, and a moved section shows up here instead of as a dead link.

const root = resolve(import.meta.dirname, '..', '..')

function markdownFiles (): string[] {
  const files = ['README.md', 'CHANGELOG.md', 'RELIABILITY.md', 'example-app/README.md']
  for (const entry of readdirSync(join(root, 'docs'), { recursive: true, withFileTypes: true })) {
    const path = relative(root, join(entry.parentPath, entry.name))
    if (entry.isFile() && path.endsWith('.md') && !path.startsWith(join('docs', 'api'))) files.push(path)
  }
  return files.filter((file) => existsSync(join(root, file))).sort()
}

// GitHub's heading anchors: lower case, punctuation dropped (but - and _),
// spaces to dashes, repeated headings numbered.
function anchors (markdown: string): Set<string> {
  const found = new Set<string>()
  const seen = new Map<string, number>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (/^\s*(`{3,}|~{3,})/.test(line)) fenced = !fenced
    if (fenced) continue
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading === null) continue
    const slug = (heading[1] ?? '').toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    found.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return found
}

function links (markdown: string): Array<{ target: string, line: number }> {
  const result: Array<{ target: string, line: number }> = []
  let fenced = false
  markdown.split('\n').forEach((text, index) => {
    if (/^\s*(`{3,}|~{3,})/.test(text)) fenced = !fenced
    if (fenced) return
    const withoutCode = text.replace(/`[^`]*`/g, '')
    for (const match of withoutCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1] ?? ''
      if (!/^[a-z][a-z+.-]*:/i.test(target)) result.push({ target, line: index + 1 })
    }
  })
  return result
}

for (const file of markdownFiles()) {
  t.test(file, async (t) => {
    const markdown = readFileSync(join(root, file), 'utf8')
    const broken: string[] = []
    for (const { target, line } of links(markdown)) {
      const [path = '', fragment] = target.split('#')
      const resolved = path === '' ? join(root, file) : resolve(dirname(join(root, file)), decodeURIComponent(path))
      if (!existsSync(resolved)) {
        broken.push(`${file}:${line}: ${target}: no such file`)
        continue
      }
      if (fragment !== undefined && fragment !== '' && statSync(resolved).isFile() && resolved.endsWith('.md')) {
        if (!anchors(readFileSync(resolved, 'utf8')).has(fragment)) broken.push(`${file}:${line}: ${target}: no such heading`)
      }
    }
    for (const line of broken) t.comment(line)
    t.strictSame(broken, [], 'every relative link resolves')
  })
}

t.test('anchors follow GitHub', async (t) => {
  t.strictSame([...anchors('# Semantics in brief\n## Inbound: the `upstream` options\n## Jobs on a queue\n## Jobs on a queue\n```\n# not a heading\n```\n')],
    ['semantics-in-brief', 'inbound-the-upstream-options', 'jobs-on-a-queue', 'jobs-on-a-queue-1'])
})
