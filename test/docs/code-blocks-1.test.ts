import t from 'tap'
import { checkBlocks, extractBlocks, testMarkdownFiles } from './code-blocks.js'

// The conventions themselves, then the first third of the docs' blocks.
t.test('a wrong option name in a doc fails this test', async (t) => {
  const blocks = extractBlocks('docs/wrong.md', [
    '```ts',
    "import { expressRequestLocals } from 'request-locals/express'",
    'expressRequestLocals({ requestId: { trustUpsteam: true } })',
    '```'
  ].join('\n'))
  t.equal(blocks.length, 1)
  const errors = checkBlocks(blocks)
  t.equal(errors.length, 1, 'exactly one error')
  t.match(errors[0], /^docs\/wrong\.md:3: TS(2353|2561): .*trustUpsteam/, 'points at the markdown line and names the key')
})

t.test('preambles and skips', async (t) => {
  const blocks = extractBlocks('docs/conventions.md', [
    '<!-- ts-doc-preamble',
    'declare const db: { find (): Promise<string> }',
    '-->',
    '<!-- ts-preamble: declare function authenticate (): Promise<string> -->',
    '',
    '```ts',
    'const name: string = await authenticate() + await db.find()',
    '```',
    'Text between cancels a block preamble.',
    '```typescript',
    'await authenticate()',
    '```',
    '<!-- ts-skip: shows a mistake -->',
    '```ts',
    'this is not TypeScript',
    '```',
    '```js',
    '<!-- ts-skip: inside a js block, not a directive -->',
    '```',
    '```ts',
    'const ok: string = await db.find()',
    '```'
  ].join('\n'))
  t.equal(blocks.length, 4)
  t.equal(blocks[2]?.skip, 'shows a mistake')
  t.equal(blocks[3]?.skip, undefined)
  const errors = checkBlocks(blocks)
  t.equal(errors.length, 1)
  t.match(errors[0], /^docs\/conventions\.md:11: TS2304: Cannot find name 'authenticate'/)
})

testMarkdownFiles(t, 0, 3)
