// RFC 9110's `token`: what a header name may be, and what W3C Baggage
// requires of a key. One definition for every option and header that must be one.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Whether `value` is an HTTP token (RFC 9110): usable as a header name or a
 * baggage key.
 *
 * @example
 * isHttpToken('x-request-id') // true
 * isHttpToken('x request id') // false
 */
export function isHttpToken (value: string): boolean {
  return TOKEN.test(value)
}
