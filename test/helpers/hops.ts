import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { requestLocal } from '../../src/index.js'

/** How many reads readUserAcrossHops makes. */
export const HOP_COUNT = 6

const randomDelay = (): number => Math.floor(Math.random() * 5)

/**
 * Service code that reaches the current user only after crossing every kind
 * of async boundary an application uses: await, timers, setImmediate,
 * process.nextTick, an EventEmitter and a stream. Returns what it read at
 * each hop, so a test can assert that none of them lost or mixed the scope.
 */
export async function readUserAcrossHops (): Promise<Array<string | undefined>> {
  const seen: Array<string | undefined> = []
  const read = (): void => { seen.push(requestLocal.user?.id) }

  await Promise.resolve()
  read()
  await new Promise<void>((resolve) => setTimeout(() => { read(); resolve() }, randomDelay()))
  await new Promise<void>((resolve) => setImmediate(() => { read(); resolve() }))
  await new Promise<void>((resolve) => process.nextTick(() => { read(); resolve() }))

  const emitter = new EventEmitter()
  const emitted = new Promise<void>((resolve) => emitter.once('ready', () => { read(); resolve() }))
  setTimeout(() => emitter.emit('ready'), randomDelay())
  await emitted

  for await (const chunk of Readable.from(['a', 'b'])) {
    if (chunk === 'b') read()
  }
  return seen
}
