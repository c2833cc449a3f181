import { EventEmitter } from 'node:events'

// Stand-ins for the callback-based libraries that lose a request's scope:
// a connection pool that hands a freed resource to the next waiter, and a job
// queue whose worker loop was started once, outside any request. Neither does
// anything unusual; that is why the loss is easy to miss.

/**
 * A pool of resources with a callback API (like mysql's or generic-pool's):
 * when none is free, `acquire`'s callback waits and is later called by
 * `release`, that is, from whichever request frees a resource.
 */
export class CallbackPool<R> {
  readonly #free: R[]
  readonly #waiting: Array<(resource: R) => void> = []

  constructor (resources: R[]) {
    this.#free = [...resources]
  }

  acquire (callback: (resource: R) => void): void {
    const resource = this.#free.pop()
    if (resource === undefined) this.#waiting.push(callback)
    else callback(resource)
  }

  release (resource: R): void {
    const next = this.#waiting.shift()
    if (next === undefined) this.#free.push(resource)
    else next(resource)
  }
}

/** What a queued job's handle emits: 'progress' then 'done'. */
export class JobHandle extends EventEmitter {}

/**
 * A job queue drained by one worker loop, started when the queue is created
 * (at application start, outside any request). Jobs finish in random order.
 */
export class JobQueue<T, R> {
  readonly #jobs: Array<{ payload: T, callback?: (result: R) => void, handle?: JobHandle }> = []
  #wake: (() => void) | undefined
  #stopped = false

  constructor (readonly work: (payload: T) => Promise<R>) {
    void this.#loop()
  }

  /** Callback style: `callback` is called from the worker loop. */
  push (payload: T, callback: (result: R) => void): void {
    this.#jobs.push({ payload, callback })
    this.#wake?.()
  }

  /** Emitter style: the worker loop emits 'progress' and 'done' on the handle. */
  submit (payload: T): JobHandle {
    const handle = new JobHandle()
    this.#jobs.push({ payload, handle })
    this.#wake?.()
    return handle
  }

  stop (): void {
    this.#stopped = true
    this.#wake?.()
  }

  async #loop (): Promise<void> {
    while (!this.#stopped) {
      const job = this.#jobs.shift()
      if (job === undefined) {
        await new Promise<void>((resolve) => { this.#wake = resolve })
        continue
      }
      // Jobs run concurrently, so they complete in a different order.
      void this.work(job.payload).then((result) => {
        job.handle?.emit('progress', 50)
        job.handle?.emit('done', result)
        job.callback?.(result)
      })
    }
  }
}

/** A few milliseconds, different each time, to shuffle completions. */
export function jitter (): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 4)))
}
