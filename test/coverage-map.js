// Every test file is measured against the library's sources only: the
// example app, helpers and the built dist/ (loaded by the packaging test)
// are not what the 100% coverage promise is about. The listing is recursive,
// so a source file in any folder of src/ stays inside that promise.
import { readdirSync } from 'node:fs'

const sources = readdirSync(new URL('../src/', import.meta.url), { recursive: true })
  .filter((name) => name.endsWith('.ts'))
  .map((name) => `src/${name.split('\\').join('/')}`)

export default function coverageMap () {
  return sources
}
