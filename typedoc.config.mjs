// TypeDoc configuration for the API reference in docs/api/ (`npm run docs`).
// The entry points are read from package.json's exports map, so a new entry
// point is documented as soon as it is exported: ./dist/<name>.js is built
// from ./src/<name>.ts.
import { readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'))

const entryPoints = Object.values(pkg.exports)
  .map((target) => (typeof target === 'object' ? target.default : target))
  .filter((file) => typeof file === 'string' && /^\.\/dist\/.+\.js$/.test(file))
  .map((file) => file.replace(/^\.\/dist\//, './src/').replace(/\.js$/, '.ts'))

/** @type {Partial<import('typedoc').TypeDocOptions & import('typedoc-plugin-markdown').PluginOptions>} */
export default {
  entryPoints,
  tsconfig: './tsconfig.build.json',
  out: './docs/api',
  plugin: ['typedoc-plugin-markdown', './scripts/typedoc-entry-names.mjs'],
  name: 'request-locals API reference',
  readme: 'none',
  excludePrivate: true,
  excludeInternal: true,
  // A warning (an unexported type in a public signature, a broken {@link},
  // a missing entry point) fails the build: the reference is never silently
  // incomplete.
  treatWarningsAsErrors: true,
  // Internal helper types that appear in public signatures but are no API of
  // their own (a compile-time check, not something a user names).
  intentionallyNotExported: ['NoUnknownKeys'],
  // Members inherited from Node's own types (ExpressLikeResponse extends
  // ServerResponse) link to Node's documentation.
  externalSymbolLinkMappings: { '@types/node': { '*': 'https://nodejs.org/api/' } },
  validation: { notExported: true, invalidLink: true, notDocumented: false },
  // No timestamps, no source links with commit hashes: a fresh build of the
  // same sources is byte for byte the checked-in one.
  disableSources: true,
  hideGenerator: true,
  gitRevision: 'main',
  entryFileName: 'README.md',
  hidePageHeader: true,
  hideBreadcrumbs: true,
  useCodeBlocks: true,
  sort: ['kind', 'alphabetical']
}
