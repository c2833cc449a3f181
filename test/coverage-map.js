// Every test file is measured against the library's sources only: the
// example app, helpers and the built dist/ (loaded by the packaging test)
// are not what the 100% coverage promise is about.
import { readdirSync } from 'node:fs'

const sources = readdirSync(new URL('../src/', import.meta.url))
  .filter((name) => name.endsWith('.ts'))
  .map((name) => `src/${name}`)

export default function coverageMap () {
  return sources
}
