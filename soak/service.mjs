// The service code every soak request runs, the same for Fastify and Express.
// It reads the request's user back through `requestLocal` after each kind of
// hop real service code makes (a timer, an immediate, a timer's callback, a
// promise chain, emitters, a per-request resource) and returns what it read,
// for the client to compare with what it sent. It also checks each read here,
// against the user the request's header named, so that aborted requests, whose
// answers never reach the client, are checked too.
import { EventEmitter } from 'node:events'
import { bindEmitter, defineRequestResource, requestLocal } from 'request-locals'
import { seededRandom } from '../bench/cli.mjs'

/** What the server saw; the load generator reads it over IPC at the end. */
export const counters = {
  /** Requests whose identify hook ran: scopes opened by the adapter. */
  scopes: 0,
  /** Reads of requestLocal.user checked against the request's header. */
  reads: 0,
  /** Reads that returned another value than this request's user. */
  mismatches: 0,
  /** Reads made outside any scope (ERR_REQUEST_LOCALS_NO_SCOPE). */
  losses: 0,
  /** Errors that were not caused by the client going away. */
  errors: 0,
  /** Errors caused by the client going away mid-body (the parser's "aborted"). */
  abortErrors: 0,
  /** The per-request resource: made once per scope, disposed once per scope. */
  created: 0,
  disposed: 0,
  /** Disposal outcomes: aborted = the client went away before the response ended. */
  outcomes: { completed: 0, failed: 0, aborted: 0 },
  /** Service calls that found their scope's resource already disposed (aborted requests). */
  refusedAfterEnd: 0,
  /** Service calls still running. */
  inFlight: 0
}

let random = Math.random
let maxDelay = 2

/** Sets the seed of the server's delays and their upper bound in ms. */
export function configure (options) {
  random = seededRandom(options.seed)
  maxDelay = options.maxDelay
}

/** Stands for the value a read returns outside any scope, in the JSON answer. */
const LOST = null

/** Reads requestLocal.user, as service code does, and checks it against `expected`. */
export function readUser (expected) {
  counters.reads++
  let user
  try {
    user = requestLocal.user
  } catch (error) {
    if (error?.code !== 'ERR_REQUEST_LOCALS_NO_SCOPE') throw error
    counters.losses++
    return LOST
  }
  if (user !== expected) counters.mismatches++
  return user
}

function randomDelay () {
  return Math.floor(random() * (maxDelay + 1))
}

function pause () {
  return new Promise((resolve) => setTimeout(resolve, randomDelay()))
}

// Made on the identify hook's get(), so every scope has exactly one, and
// disposed by the adapter when the scope ends: created must equal disposed
// once the load has stopped, aborted requests included.
const session = defineRequestResource({
  name: 'soak-session',
  create () {
    counters.created++
    return { user: requestLocal.user }
  },
  dispose (_session, outcome) {
    counters.disposed++
    counters.outcomes[outcome.status]++
    notifyIfQuiet()
  }
})

/**
 * The hook/middleware step: sets the request's user in its locals, as an
 * authentication hook would, and opens its per-request resource.
 */
export async function identify (user) {
  counters.scopes++
  requestLocal.user = user
  await session.get()
}

// A queue shared by all requests, whose one timer flushes whatever jobs are
// waiting: the timer runs in the context of the request that armed it, so it
// emits every other waiting job's 'done' from that request's scope. The
// library cannot see this hand-over; the job's emitter must be bound with
// bindEmitter while its own request is current (a pool handing out freed
// connections or a worker loop behaves the same).
class BatchQueue {
  #waiting = []
  #armed = false
  #flush = () => {
    this.#armed = false
    for (const job of this.#waiting.splice(0)) job.emit('done')
  }

  submit () {
    const job = new EventEmitter()
    this.#waiting.push(job)
    if (!this.#armed) {
      this.#armed = true
      setTimeout(this.#flush, randomDelay())
    }
    return job
  }
}

const queue = new BatchQueue()

function readInSharedQueue (expected) {
  const job = bindEmitter(queue.submit())
  return new Promise((resolve) => job.once('done', () => resolve(readUser(expected))))
}

// An emitter of the request's own, emitted from a timer the request set:
// it runs in the request's context without any binding.
function readInOwnEmitter (expected) {
  const events = new EventEmitter()
  const read = new Promise((resolve) => events.once('ready', () => resolve(readUser(expected))))
  setTimeout(() => events.emit('ready'), randomDelay())
  return read
}

async function readResource () {
  try {
    return (await session.get()).user
  } catch (error) {
    if (error?.code !== 'ERR_REQUEST_LOCALS_SCOPE_ENDED') throw error
    // The scope ended before the service got here: the client went away.
    counters.refusedAfterEnd++
    return 'scope-ended'
  }
}

/** The service: every value it returns must be `expected`. */
export async function whoAmI (expected) {
  counters.inFlight++
  try {
    await pause()
    const afterTimeout = readUser(expected)
    await new Promise((resolve) => setImmediate(resolve))
    const afterImmediate = readUser(expected)
    const inTimerCallback = await new Promise((resolve) => setTimeout(() => resolve(readUser(expected)), randomDelay()))
    const inPromiseChain = await Promise.resolve().then(pause).then(() => readUser(expected))
    const inOwnEmitter = await readInOwnEmitter(expected)
    const inSharedQueue = await readInSharedQueue(expected)
    const resource = await readResource()
    return { afterTimeout, afterImmediate, inTimerCallback, inPromiseChain, inOwnEmitter, inSharedQueue, resource }
  } finally {
    counters.inFlight--
    notifyIfQuiet()
  }
}

/**
 * A streamed answer: the first part goes out at once, the second after a
 * delay, so that a client can go away in the middle of the response.
 * `write` and `end` take strings; `closed()` says whether the client has gone.
 */
export async function streamWhoAmI (expected, { write, end, closed }) {
  counters.inFlight++
  try {
    write(`{"first":${JSON.stringify(readUser(expected))}`)
    await pause()
    const second = readUser(expected)
    if (!closed()) end(`,"second":${JSON.stringify(second)}}`)
  } finally {
    counters.inFlight--
    notifyIfQuiet()
  }
}

let quietWaiter

function notifyIfQuiet () {
  if (quietWaiter !== undefined && counters.inFlight === 0 && counters.created === counters.disposed) {
    quietWaiter()
    quietWaiter = undefined
  }
}

/**
 * Resolves once no service call is running and every resource made has been
 * disposed (or after `timeoutMs`, leaving the imbalance for the report).
 */
export function quiet (timeoutMs) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    quietWaiter = () => {
      clearTimeout(timer)
      resolve()
    }
    notifyIfQuiet()
  })
}
