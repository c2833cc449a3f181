// The soak's load generator: `connections` keep-alive connections (an undici
// Pool), each kept busy with one request after another. Every request carries
// a user of its own (a header, and the body for POSTs), and every answer is
// checked: each value the server read back must be that user.
//
// The mix, drawn from the seeded generator: GET /whoami; POST /whoami with a
// JSON body written in 2–4 chunks with pauses between them; GET /stream, an
// answer sent in two parts with a pause between them. A share of requests is
// aborted by the client: mid-body (after the first chunk), while the server
// works (before any answer), or mid-response (after the first part).
import { readFileSync } from 'node:fs'
import { Pool } from 'undici'
import { seededRandom } from '../bench/cli.mjs'

function pause (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Per-run tallies of what the client saw. */
export function emptyTally () {
  return {
    sent: 0,
    verified: 0,
    reads: 0,
    mismatches: 0,
    losses: 0,
    errors: 0,
    aborted: { body: 0, waiting: 0, response: 0 },
    samples: []
  }
}

const sampleLimit = 5

// The values each kind of answer must hold: an answer missing one is an error.
const service = ['afterTimeout', 'afterImmediate', 'inTimerCallback', 'inPromiseChain', 'inOwnEmitter', 'inSharedQueue', 'resource']
const expectedFields = {
  get: ['afterBody', ...service],
  post: ['body', 'afterBody', ...service],
  stream: ['first', 'second']
}

function record (tally, kind, detail) {
  if (tally.samples.length < sampleLimit) tally.samples.push({ kind, ...detail })
}

export class Load {
  #pool
  #random
  #tag
  #maxDelay
  #abortShare
  #next = 0
  #closing
  tally = emptyTally()

  /**
   * `tag` makes users unique across runs; `maxDelay` bounds the pauses in ms;
   * `abortShare` is the share of requests the client aborts.
   */
  constructor ({ port, connections, seed, tag, maxDelay, abortShare, transport = 'h1', sessions = 4 }) {
    // HTTP/2: the same `connections` requests in flight, as streams
    // multiplexed over a few TLS sessions.
    this.#pool = transport === 'h2'
      ? new Pool(`https://localhost:${port}`, {
        connections: sessions,
        allowH2: true,
        maxConcurrentStreams: Math.ceil(connections / sessions),
        pipelining: Math.ceil(connections / sessions),
        connect: { ca: readFileSync(new URL('../test/fixtures/tls/localhost-cert.pem', import.meta.url)), servername: 'localhost' }
      })
      : new Pool(`http://127.0.0.1:${port}`, { connections, pipelining: 1 })
    this.connections = connections
    this.#random = seededRandom(seed)
    this.#tag = tag
    this.#maxDelay = maxDelay
    this.#abortShare = abortShare
  }

  /** Sends `count` more requests, `connections` at a time; resolves once all have settled. */
  async drive (count) {
    const last = this.#next + count
    const worker = async () => {
      while (this.#next < last) await this.#one(this.#next++)
    }
    await Promise.all(Array.from({ length: this.connections }, worker))
  }

  // Idempotent: an HTTP/2 run closes its sessions before the final count.
  close () {
    this.#closing ??= this.#pool.close()
    return this.#closing
  }

  #delay () {
    return Math.floor(this.#random() * (this.#maxDelay + 1))
  }

  async #one (sequence) {
    const random = this.#random
    const user = `${this.#tag}-${sequence}-${Math.floor(random() * 2 ** 32).toString(36)}`
    const pick = random()
    const kind = pick < 0.35 ? 'get' : pick < 0.9 ? 'post' : 'stream'
    // Where this request is aborted, if it is: a POST mid-body or while the
    // server works, a GET while the server works, a stream mid-response.
    let abortAt
    if (random() < this.#abortShare) abortAt = kind === 'stream' ? 'response' : kind === 'post' && random() < 0.5 ? 'body' : 'waiting'
    // Only the requests to abort get a signal: it costs the others nothing.
    const controller = abortAt === undefined ? undefined : new AbortController()
    const request = { path: kind === 'stream' ? '/stream' : '/whoami', method: kind === 'post' ? 'POST' : 'GET', headers: { 'x-soak-user': user }, signal: controller?.signal }
    if (kind === 'post') {
      request.headers['content-type'] = 'application/json'
      request.body = this.#chunkedBody(user, abortAt === 'body' ? controller : undefined)
    }
    let timer
    if (abortAt === 'waiting') timer = setTimeout(() => controller.abort(), this.#delay() * 2)
    this.tally.sent++
    try {
      const response = await this.#pool.request(request)
      if (abortAt === 'response') {
        // The first part has been sent before the server pauses: wait for it.
        for await (const _chunk of response.body) { // eslint-disable-line no-unused-vars
          controller.abort()
        }
      }
      const text = await response.body.text()
      clearTimeout(timer)
      this.#check(user, kind, response.statusCode, text)
    } catch (error) {
      clearTimeout(timer)
      if (controller?.signal.aborted) {
        this.tally.aborted[abortAt]++
        return
      }
      this.tally.errors++
      record(this.tally, 'error', { user, kind, error: String(error) })
    }
  }

  // A JSON body written in 2–4 chunks with a pause after each; for a request
  // aborted mid-body, the client gives up after the first chunk.
  async * #chunkedBody (user, abortAfterFirst) {
    const text = JSON.stringify({ user, padding: 'x'.repeat(Math.floor(this.#random() * 2048)) })
    const chunks = 2 + Math.floor(this.#random() * 3)
    const size = Math.ceil(text.length / chunks)
    for (let i = 0; i < text.length; i += size) {
      yield Buffer.from(text.slice(i, i + size))
      await pause(this.#delay())
      if (abortAfterFirst !== undefined) {
        abortAfterFirst.abort()
        return
      }
    }
  }

  #check (user, kind, status, text) {
    if (status !== 200) {
      this.tally.errors++
      record(this.tally, 'error', { user, kind, status, text: text.slice(0, 200) })
      return
    }
    const seen = JSON.parse(text)
    const fields = Object.keys(seen)
    if (fields.join() !== expectedFields[kind].join()) {
      this.tally.errors++
      record(this.tally, 'error', { user, kind, fields })
      return
    }
    for (const [where, value] of Object.entries(seen)) {
      this.tally.reads++
      if (value === null) {
        this.tally.losses++
        record(this.tally, 'loss', { user, kind, where })
      } else if (value !== user) {
        this.tally.mismatches++
        record(this.tally, 'mismatch', { user, kind, where, value })
      }
    }
    this.tally.verified++
  }
}
