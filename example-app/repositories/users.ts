import { query } from '../db/transaction.js'
import { log } from '../log.js'
import type { User } from '../locals.js'

export async function findUserByToken (token: string): Promise<User | undefined> {
  const rows = await query<User>('SELECT id, name FROM users WHERE token = $1', [token])
  log.debug({ found: rows.length === 1 }, 'user looked up by token')
  return rows[0]
}
