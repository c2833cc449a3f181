import { requestLocal } from 'request-locals'
import '../locals.js'

// A service deep in the call stack: it knows the current user without being
// handed the request.
export async function greet (): Promise<{ message: string }> {
  await Promise.resolve()
  const user = requestLocal.user
  return { message: user === undefined ? 'Hello, stranger.' : `Hello, ${user.name}.` }
}
