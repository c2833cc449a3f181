import { log } from '../log.js'
import type { User } from '../locals.js'

const users: Record<string, string> = { alice: 'Alice', bob: 'Bob' }

// A repository at the bottom of the call stack: it logs with the request's
// id and user without being handed either.
export async function findUser (id: string): Promise<User | undefined> {
  await Promise.resolve()
  const name = Object.hasOwn(users, id) ? users[id] : undefined
  log.debug({ userLookup: id, found: name !== undefined }, 'user lookup')
  return name === undefined ? undefined : { id, name }
}
