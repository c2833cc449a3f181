// A seeded generator (mulberry32), so that a soak run's mix of requests,
// bodies, delays and aborts can be replayed with the same --seed. Scheduling
// still varies from run to run: the seed fixes what is sent, not the
// interleaving the machine produces.

/** Returns a function giving numbers in [0, 1), like Math.random, from `seed`. */
export function seededRandom (seed) {
  let state = seed >>> 0
  return function random () {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
