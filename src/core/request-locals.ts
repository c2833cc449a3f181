/**
 * The values of one request scope. Empty here: applications declare their
 * keys by augmenting this interface, and every API of the package is then
 * typed by it.
 *
 * @example
 * declare module 'request-locals' {
 *   interface RequestLocals {
 *     user?: { id: string, name: string }
 *     tenant: string
 *   }
 * }
 */
export interface RequestLocals {}
