import t from 'tap'
import { connect, createServer } from 'node:net'
import { spawnTied, stopTied } from './children.js'

// The queue tests run against a real Redis server: the one REDIS_URL names
// (.ci/run starts one), else a redis-server of their own on a free loopback
// port, stopped after the test.

export interface RedisForTests {
  url: string
  /** Stops the server this helper started; does nothing for REDIS_URL's. */
  stop: () => Promise<void>
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    }).on('error', reject)
  })
}

/**
 * Whether a Redis server answers at `url` within `timeoutMs`: undefined when
 * it does, else why not. One PING over a plain socket, so that a dead server
 * is known in seconds, before any client starts retrying for ever.
 */
export function probeRedis (url: string, timeoutMs = 3000): Promise<string | undefined> {
  let host: string
  let port: number
  try {
    const parsed = new URL(url)
    host = parsed.hostname
    port = Number(parsed.port || 6379)
  } catch {
    return Promise.resolve('it is not a URL')
  }
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (why: string | undefined): void => {
      socket.destroy()
      clearTimeout(timer)
      resolve(why)
    }
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs)
    socket.on('connect', () => socket.write('PING\r\n'))
    // +PONG, or an error such as -NOAUTH: either way a Redis server answered.
    socket.on('data', (chunk: Buffer) => done(/^[+-]/.test(chunk.toString()) ? undefined : 'it does not speak the Redis protocol'))
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message))
    socket.on('close', () => done('it closed the connection'))
  })
}

/**
 * A Redis server for a test, or a string saying why there is none (REDIS_URL
 * names a server that does not answer; or no REDIS_URL and no redis-server
 * on PATH).
 */
export async function redisForTests (): Promise<RedisForTests | string> {
  const url = process.env.REDIS_URL
  if (url !== undefined && url !== '') {
    const dead = await probeRedis(url)
    if (dead !== undefined) return `REDIS_URL=${url} does not answer (${dead})`
    return { url, stop: async () => {} }
  }
  const port = await freePort()
  // Nothing written to disk; the log goes to stdout, where readiness shows.
  const child = spawnTied('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const ready = await new Promise<true | string>((resolve) => {
    child.on('exit', (code) => resolve(code === 127 ? 'redis-server is not on PATH' : `redis-server exited with ${String(code)}: ${output}`))
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve(true)
    })
  })
  if (ready !== true) return ready
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => stopTied(child)
  }
}

/**
 * Runs `tests` against a Redis server (see redisForTests), stopped after the
 * test file. Without one, fails under CI=true (CI must never skip them) and
 * otherwise skips the file, saying how to run it.
 */
export async function withRedis (tests: (url: string) => Promise<void>): Promise<void> {
  const redis = await redisForTests()
  if (typeof redis === 'string') {
    const how = 'Set REDIS_URL to a Redis server, or install redis-server (apt-get install redis-server) and run it again.'
    // A REDIS_URL that was set but does not answer is a mistake to report,
    // not a reason to skip; one line, and no process started.
    const namedButDead = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== ''
    if (process.env.CI === 'true' || namedButDead) t.fail(`The queue tests need a Redis server and found none: ${redis}. ${how}`, { stack: '', at: null })
    else t.plan(0, `no Redis server (${redis}). ${how}`)
    return
  }
  t.teardown(() => redis.stop())
  await tests(redis.url)
}
