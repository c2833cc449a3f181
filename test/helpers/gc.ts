import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// The test runner starts node without --expose-gc; the flag can still be set
// at run time, and a fresh context then sees `gc`.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * Runs full garbage collections until every object `refs` point to is
 * collected, letting pending callbacks (a destroyed socket's close handlers,
 * a framework's error path still unwinding) run in between; gives up after a
 * bounded number of rounds. Resolves with how many objects are still alive:
 * for tests that check nothing outlives its request.
 */
export async function collectGarbage (refs: ReadonlyArray<WeakRef<object>>): Promise<number> {
  let alive = refs.length
  for (let round = 0; round < 50 && alive > 0; round++) {
    await new Promise((resolve) => setTimeout(resolve, round === 0 ? 0 : 10))
    gc()
    alive = refs.filter((ref) => ref.deref() !== undefined).length
  }
  return alive
}
