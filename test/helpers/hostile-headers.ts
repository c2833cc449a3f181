import type { RequestIdRejection } from '../../src/headers/request-id.js'

/**
 * Incoming x-request-id values (one entry per header occurrence) and what
 * the policy must make of them: accepted verbatim, or replaced for a reason.
 * Shared by the unit test of the policy and the tests that send it to a server.
 */
export const hostileHeaders: Array<{ name: string, values: string[], rejected: RequestIdRejection | undefined }> = [
  { name: 'a plain id', values: ['abc-123_x.y:z@host'], rejected: undefined },
  { name: 'exactly 200 characters', values: ['a'.repeat(200)], rejected: undefined },
  { name: '201 characters', values: ['b'.repeat(201)], rejected: 'too-long' },
  { name: '8 KB', values: ['c'.repeat(8192)], rejected: 'too-long' },
  { name: 'empty', values: [''], rejected: 'empty' },
  { name: 'CR/LF (log and header injection)', values: ['EVIL\r\nX-Injected: 1'], rejected: 'invalid-characters' },
  { name: 'a bare LF forging a log line', values: ['EVIL\n{"level":50,"msg":"forged"}'], rejected: 'invalid-characters' },
  { name: 'NUL', values: ['EVIL\u0000'], rejected: 'invalid-characters' },
  { name: 'ESC (terminal escapes)', values: ['EVIL\u001b[31mred'], rejected: 'invalid-characters' },
  { name: 'DEL', values: ['EVIL\u007f'], rejected: 'invalid-characters' },
  { name: 'tab', values: ['EVIL\tid'], rejected: 'invalid-characters' },
  { name: 'space', values: ['EVIL id'], rejected: 'invalid-characters' },
  { name: 'non-ASCII', values: ['EVILcafé'], rejected: 'invalid-characters' },
  { name: 'bidi override', values: ['EVIL\u202egnp.exe'], rejected: 'invalid-characters' },
  { name: 'latin1 bytes as a server decodes them', values: ['EVIL\u00c3\u00a9'], rejected: 'invalid-characters' },
  { name: 'comma (a folded list)', values: ['EVIL,second'], rejected: 'invalid-characters' },
  { name: 'quotes and braces', values: ['EVIL"}{'], rejected: 'invalid-characters' },
  { name: 'a path', values: ['EVIL/../etc'], rejected: 'invalid-characters' },
  { name: 'duplicated, different values', values: ['first', 'second'], rejected: 'duplicated' },
  { name: 'duplicated, same value', values: ['same', 'same'], rejected: 'duplicated' }
]
