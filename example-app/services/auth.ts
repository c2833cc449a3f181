import { requestLocal } from 'request-locals'
import { addLogBindings } from 'request-locals/pino'
import { HttpError } from '../errors.js'
import { log } from '../log.js'
import { findUserByToken } from '../repositories/users.js'
import '../locals.js'

/**
 * Authenticates the request from its Authorization header and makes the user
 * the request's: every later read of requestLocal.user, and every later log
 * line of this request, carries it.
 */
export async function authenticate (authorization: string | undefined): Promise<void> {
  const token = /^Bearer ([\w.-]+)$/.exec(authorization ?? '')?.[1]
  if (token === undefined) throw new HttpError(401, 'Send Authorization: Bearer <token> (try alice-token or bob-token).')
  const user = await findUserByToken(token)
  if (user === undefined) throw new HttpError(401, 'Unknown token.')
  requestLocal.user = user
  addLogBindings({ userId: user.id })
  log.debug('authenticated')
}
