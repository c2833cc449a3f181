import { checkOptionsObject, showKey } from '../core/options.js'
import { describe, optionsError } from '../core/errors.js'
import { isHttpToken } from './http-token.js'
import { isReservedKey, reservedKeyList } from '../core/reserved-keys.js'
import type { Store } from '../core/storage.js'
import type { RequestLocals } from '../core/request-locals.js'

// W3C Baggage (https://www.w3.org/TR/baggage/): a comma-separated list of
// `key=value;properties` members, values percent-encoded. The limits are the
// ones this library enforces both ways: a header over them is dropped whole,
// never parsed in part, so a hostile one costs one length check.

/** The most bytes a baggage header may hold. */
export const MAX_BAGGAGE_BYTES = 8192
/** The most list-members a baggage header may hold. */
export const MAX_BAGGAGE_MEMBERS = 180

/**
 * Which locals a service takes from a trusted upstream's W3C `baggage`
 * header. Values arrive as strings; `parse` turns one into the local's type.
 *
 * @example
 * upstream: {
 *   trust: true,
 *   baggage: { keys: ['tenant', 'plan'], parse: { plan: (value) => value === 'pro' ? 'pro' : 'free' } }
 * }
 */
export interface InboundBaggageOptions {
  /** The locals accepted from incoming baggage; every other member is dropped. */
  keys: ReadonlyArray<keyof RequestLocals & string>
  /**
   * Keys whose names look identity-bearing (`user`, `roles`, `session`,
   * `token` …) that are nonetheless accepted. Each one must be listed here
   * as well as in `keys`: any client that reaches the service can send
   * baggage, so such a value is only as trustworthy as the network path.
   */
  identityKeys?: ReadonlyArray<keyof RequestLocals & string>
  /**
   * Per key, turns the decoded string into the local's value; returning
   * undefined (or throwing) drops the member. Without one, the local is the
   * decoded string.
   */
  parse?: { [K in keyof RequestLocals]?: (value: string) => RequestLocals[K] | undefined }
}

/** The validated form of {@link InboundBaggageOptions}. */
export interface BaggagePolicy {
  readonly keys: ReadonlySet<string>
  readonly parse: Readonly<Record<string, ((value: string) => unknown) | undefined>>
}

// baggage-octet: printable ASCII but space, DQUOTE, comma, semicolon and backslash.
const VALUE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/
// Names that usually carry who the caller is or what it may do. A name
// check is a backstop against a careless `keys` list, not the protection:
// that is accepting only the keys listed, only from a trusted upstream.
const IDENTITY = /user|principal|identity|actor|account|role|permission|scope|session|token|auth|claim|grant|admin|subject|credential|password|secret|apikey/i

function keyList (value: unknown, option: string): string[] {
  const bad = Array.isArray(value) ? value.findIndex((key) => typeof key !== 'string' || !isHttpToken(key) || isReservedKey(key)) : -1
  if (!Array.isArray(value) || bad !== -1) {
    const found = Array.isArray(value) ? `${typeof value[bad] === 'string' ? showKey(value[bad] as string) : describe(value[bad])} at index ${bad}` : describe(value)
    throw optionsError(`${option} must be an array of local names (HTTP tokens such as 'tenant', none of the reserved ${reservedKeyList}); found ${found}. Pass for example ['tenant'].`)
  }
  return value as string[]
}

/** Checks the names of the locals sent as outgoing baggage. */
export function compileOutboundBaggageKeys (value: unknown, option: string): readonly string[] {
  return keyList(value, option)
}

/** Validates {@link InboundBaggageOptions} once, when a server is set up. */
export function compileBaggagePolicy (options: unknown, where: string): BaggagePolicy {
  const { keys, identityKeys = [], parse = {} } = checkOptionsObject<InboundBaggageOptions>(options, {
    where,
    known: ['keys', 'identityKeys', 'parse'],
    example: "{ keys: ['tenant'] }"
  })
  const accepted = keyList(keys, `${where}.keys`)
  const identity = keyList(identityKeys, `${where}.identityKeys`)
  if (typeof parse !== 'object' || parse === null || Array.isArray(parse)) {
    throw optionsError(`${where}.parse must be an object of functions by key; found ${describe(parse)}. Pass for example { plan: (value) => value }.`)
  }
  const parsers: Record<string, ((value: string) => unknown) | undefined> = Object.create(null)
  for (const key of Object.keys(parse)) {
    const fn = (parse as Record<string, unknown>)[key]
    if (!accepted.includes(key) || typeof fn !== 'function') {
      throw optionsError(`${where}.parse.${key} must be a function (value) => value for a key listed in ${where}.keys; found ${describe(fn)}${accepted.includes(key) ? '' : ' for a key not listed'}.`)
    }
    parsers[key] = fn as (value: string) => unknown
  }
  for (const key of accepted) {
    if (IDENTITY.test(key) && !identity.includes(key)) {
      throw optionsError(
        `${where}.keys has ${JSON.stringify(key)}, which looks identity-bearing. ` +
        'Any client that can reach this service can send a baggage header, so a user, role, session or token taken from it can be forged. ' +
        `Derive it from the request's own credentials instead; or, when only an authenticating gateway can reach this service, opt in for this key by listing it in ${where}.identityKeys too.`
      )
    }
  }
  return { keys: new Set(accepted), parse: parsers }
}

function isOws (code: number): boolean {
  return code === 0x20 || code === 0x09
}

// The text between `start` and `end` without surrounding spaces and tabs
// (by hand: a regex replace cost several times more per member).
function trimmed (text: string, start: number, end: number): string {
  while (start < end && isOws(text.charCodeAt(start))) start++
  while (end > start && isOws(text.charCodeAt(end - 1))) end--
  return text.slice(start, end)
}

/**
 * The accepted members of one incoming `baggage` header (several headers
 * joined with commas), decoded and parsed, or undefined when none is. Never
 * throws: a header over the limits is dropped whole, an invalid member
 * (bad key, bad characters, bad percent-encoding, refused by `parse`) alone.
 * The first occurrence of a key wins.
 */
export function parseBaggage (policy: BaggagePolicy, header: string): Store | undefined {
  // Header values are latin1 strings (one character per byte).
  if (header.length > MAX_BAGGAGE_BYTES) return undefined
  const members = header.split(',')
  if (members.length > MAX_BAGGAGE_MEMBERS) return undefined
  let found: Store | undefined
  for (const member of members) {
    const semicolon = member.indexOf(';')
    const end = semicolon === -1 ? member.length : semicolon
    const equals = member.indexOf('=')
    if (equals === -1 || equals > end) continue
    const key = trimmed(member, 0, equals)
    if (!policy.keys.has(key) || (found !== undefined && Object.hasOwn(found, key))) continue
    const raw = trimmed(member, equals + 1, end)
    if (!VALUE.test(raw)) continue
    const value = decode(raw, policy.parse[key])
    if (value === undefined) continue
    // A plain object: its keys can only be accepted ones, never __proto__.
    found ??= {}
    found[key] = value
  }
  return found
}

function decode (raw: string, parse: ((value: string) => unknown) | undefined): unknown {
  try {
    const text = raw.includes('%') ? decodeURIComponent(raw) : raw
    return parse === undefined ? text : parse(text)
  } catch {
    // Malformed percent-encoding, or a parse function that refused the value.
    return undefined
  }
}

function encodeMember (key: string, value: string): string | undefined {
  try {
    // encodeURIComponent leaves only baggage-octets unescaped.
    return `${key}=${encodeURIComponent(value)}`
  } catch {
    // A lone surrogate has no UTF-8 form.
    return undefined
  }
}

/**
 * The `baggage` header value carrying `keys` of `store`: strings, numbers,
 * booleans and bigints, percent-encoded; other values (objects: perhaps a
 * user) and unset keys are left out, and so is a member that would break
 * the limits. Undefined when nothing is sent.
 */
export function serializeBaggage (store: Store, keys: readonly string[]): string | undefined {
  let header = ''
  let count = 0
  for (const key of keys) {
    const value = store[key]
    const type = typeof value
    if (type !== 'string' && type !== 'number' && type !== 'boolean' && type !== 'bigint') continue
    const member = encodeMember(key, String(value))
    if (member === undefined) continue
    const length = header.length + (count === 0 ? 0 : 1) + member.length
    if (length > MAX_BAGGAGE_BYTES || count === MAX_BAGGAGE_MEMBERS) continue
    header = count === 0 ? member : `${header},${member}`
    count++
  }
  return count === 0 ? undefined : header
}
