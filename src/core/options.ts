import { describe, optionsError, RequestLocalsError, type RequestLocalsErrorCode } from './errors.js'
import { isPlainObject } from './plain-object.js'

// The one check every options object goes through: a plain object holding
// only known keys. Options are checked once, when a server or helper is set
// up, so this never runs per request. A misspelled key is an error, not a
// silent default: a misspelled `origins` would send request ids and baggage
// to third-party hosts.

/** How {@link checkOptionsObject} names and explains one options object. */
export interface OptionsShape {
  /** How messages name the object, e.g. "propagateRequestLocals(options)". */
  readonly where: string
  /** Every key the object may hold. */
  readonly known: readonly string[]
  /** An example of a valid value, shown when the object is not one. */
  readonly example: string
  /**
   * Keys of 0.1.0 that moved, each with the sentence that says where to, e.g.
   * "`requestId.trustUpstream` was renamed to `upstream.trust` in 1.0. Pass …".
   */
  readonly renamed?: Readonly<Record<string, string>>
  /** The code for a value that is not an object (defaults to ERR_REQUEST_LOCALS_OPTIONS). */
  readonly code?: RequestLocalsErrorCode
}

/**
 * How a key appears in a message: as is when it is a plain identifier,
 * otherwise quoted and cut short, so that a key holding line breaks or
 * escape sequences cannot forge lines in a log.
 */
export function showKey (key: string): string {
  if (/^[A-Za-z_$][\w$-]{0,63}$/.test(key)) return `\`${key}\``
  const quoted = JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)
  return quoted.replace(/[^\x20-\x7e]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/**
 * The number of single-character insertions, deletions, substitutions and
 * adjacent swaps that turn `a` into `b` (optimal string alignment distance),
 * compared case-insensitively.
 */
export function editDistance (a: string, b: string): number {
  const s = a.toLowerCase()
  const t = b.toLowerCase()
  const rows: number[][] = []
  for (let i = 0; i <= s.length; i++) {
    rows.push([i])
    for (let j = 1; j <= t.length; j++) {
      if (i === 0) {
        rows[i][j] = j
        continue
      }
      const cost = s[i - 1] === t[j - 1] ? 0 : 1
      let best = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) best = Math.min(best, rows[i - 2][j - 2] + 1)
      rows[i][j] = best
    }
  }
  return rows[s.length][t.length]
}

/** The known key nearest to `key` (the first of equals, in the order given). */
export function nearestKey (key: string, known: readonly string[]): string | undefined {
  // Long hostile keys are cut: the distance costs length × length.
  const probe = key.slice(0, 64)
  let nearest: string | undefined
  let best = Infinity
  for (const candidate of known) {
    const distance = editDistance(probe, candidate)
    if (distance < best) {
      best = distance
      nearest = candidate
    }
  }
  return nearest
}

/** "unknown option `origin` in where; did you mean `origins`? Known options: …" */
export function unknownKeyError (key: string, shape: OptionsShape): RequestLocalsError {
  if (shape.renamed !== undefined && Object.hasOwn(shape.renamed, key)) {
    return optionsError(`${shape.where}: found ${showKey(key)}: ${shape.renamed[key]}`)
  }
  const nearest = nearestKey(key, shape.known)
  return optionsError(
    `${shape.where}: found the unknown option ${showKey(key)}` +
    (nearest === undefined ? '; expected no options. ' : `; did you mean \`${nearest}\`? `) +
    (shape.known.length === 0 ? 'Pass nothing.' : `Expected only ${shape.known.map((name) => `\`${name}\``).join(', ')}. Rename it or remove it.`)
  )
}

/**
 * Checks that `options` is a plain object holding only `shape.known` keys
 * and returns it typed; throws ERR_REQUEST_LOCALS_OPTIONS (or `shape.code`
 * for a value that is no object) naming the first unknown key and the
 * nearest known one. Only own keys count: an inherited key (a polluted
 * `Object.prototype`) is neither an option nor an error.
 *
 * @example
 * const { origins } = checkOptionsObject(options, {
 *   where: 'propagateRequestLocals(options)', known: ['origins', 'baggage'], example: "{ origins: ['https://api.internal'] }"
 * })
 */
export function checkOptionsObject<T extends object> (options: unknown, shape: OptionsShape): Partial<T> {
  if (!isPlainObject(options)) {
    throw new RequestLocalsError(
      shape.code ?? 'ERR_REQUEST_LOCALS_OPTIONS',
      `${shape.where} must be a plain object; found ${describe(options)}. Pass for example ${shape.example}.`
    )
  }
  for (const key of Object.keys(options)) {
    if (!shape.known.includes(key)) throw unknownKeyError(key, shape)
  }
  return options as Partial<T>
}

/**
 * The value of an optional boolean option, or `fallback` when it is unset.
 *
 * @example
 * const trace = booleanOption(options.traceparent, true, 'propagateRequestLocals(options).traceparent')
 */
export function booleanOption (value: unknown, fallback: boolean, option: string): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw optionsError(`${option} must be true or false; found ${describe(value)}.`)
  return value
}
