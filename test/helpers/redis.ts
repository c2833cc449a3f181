import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'

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
 * A Redis server for a test, or a string saying why there is none (no
 * REDIS_URL and no redis-server on PATH).
 */
export async function redisForTests (): Promise<RedisForTests | string> {
  const url = process.env.REDIS_URL
  if (url !== undefined && url !== '') return { url, stop: async () => {} }
  const port = await freePort()
  // Nothing written to disk; the log goes to stdout, where readiness shows.
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const ready = await new Promise<true | string>((resolve) => {
    child.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT' ? 'redis-server is not on PATH' : `redis-server failed to start: ${err.message}`))
    child.on('exit', (code) => resolve(`redis-server exited with ${String(code)}: ${output}`))
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve(true)
    })
  })
  if (ready !== true) return ready
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    }
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
    if (process.env.CI === 'true') t.fail(`The queue tests need a Redis server and found none: ${redis}. ${how}`)
    else t.plan(0, `no Redis server (${redis}). ${how}`)
    return
  }
  t.teardown(() => redis.stop())
  await tests(redis.url)
}
