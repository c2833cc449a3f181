import { requestLocal } from 'request-locals'
import { log } from '../log.js'
import '../locals.js'

// A service deep in the call stack: it knows the current user, and logs
// with the request's id and user, without being handed the request.
export async function greet (): Promise<{ message: string }> {
  await Promise.resolve()
  const user = requestLocal.user
  log.info({ greeted: user?.id ?? null }, 'greeting')
  return { message: user === undefined ? 'Hello, stranger.' : `Hello, ${user.name}.` }
}
