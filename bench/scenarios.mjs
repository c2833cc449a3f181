// The three workloads every variant serves. Each variant implements the same
// three routes with its own library's API; the load generator only needs the
// request shape defined here.

/** A 1 KB JSON body for the POST scenario. */
export const body1k = JSON.stringify({
  items: Array.from({ length: 16 }, (_, i) => ({ id: i, name: `item-${i}`, qty: i * 3, note: 'x'.repeat(19) }))
})

export const scenarios = [
  { name: 'small', title: 'GET small JSON', method: 'GET', path: '/small' },
  { name: 'locals', title: 'GET, three locals read after two awaits', method: 'GET', path: '/locals' },
  // Not pipelined: Express's body parser skips the body of a request the
  // socket has already read to its end, which pipelining makes common.
  { name: 'body', title: 'POST 1 KB JSON body', method: 'POST', path: '/body', headers: { 'content-type': 'application/json' }, body: body1k, pipelining: 1 }
]

/** What the locals scenario writes per request (a fresh user object, as a real auth step would). */
export function currentUser () {
  return { id: 'u1', name: 'Ada' }
}

/**
 * Stands in for two awaited calls (a cache, a database) before the service
 * reads its locals: each await is a promise hop the context must survive.
 */
export async function step (value) {
  return value
}
