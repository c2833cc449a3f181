// CPU cost of per-request resources, measured with process.cpuUsage() so that
// other load on the machine inflates it less than wall-clock throughput.
// Run: npm run build && npx tsx bench/resources.ts
// Compare the first line with the same script on a build without resources.
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRequestLocals from 'request-locals/fastify'
import { defineRequestResource, hasLocals, runWithLocals } from 'request-locals'

const ROUNDS = 5
const REQUESTS = 20_000
const CALLS = 200_000

const connection = defineRequestResource({ name: 'connection', create: () => ({}), dispose: () => {} })

async function app (useResource: boolean): Promise<FastifyInstance> {
  const fastify = Fastify()
  await fastify.register(fastifyRequestLocals)
  fastify.get('/', async () => {
    if (useResource) await connection.get()
    return { inScope: hasLocals() }
  })
  await fastify.ready()
  return fastify
}

function cpuMicros (start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start)
  return used.user + used.system
}

function median (values: number[]): number {
  return values.sort((a, b) => a - b)[Math.floor(values.length / 2)]
}

async function perRequest (fastify: FastifyInstance): Promise<number> {
  const start = process.cpuUsage()
  for (let i = 0; i < REQUESTS; i++) await fastify.inject('/')
  return cpuMicros(start) / REQUESTS
}

async function perCall (async: boolean): Promise<number> {
  const start = process.cpuUsage()
  if (async) {
    for (let i = 0; i < CALLS; i++) await runWithLocals({}, async () => i)
  } else {
    for (let i = 0; i < CALLS; i++) runWithLocals({}, () => i)
  }
  return cpuMicros(start) * 1000 / CALLS
}

const without = await app(false)
const withResource = await app(true)
const results: Record<string, number[]> = {}
const record = (name: string, value: number): void => { (results[name] ??= []).push(value) }
for (let round = 0; round < ROUNDS; round++) {
  record('fastify inject, no resource (µs CPU/request)', await perRequest(without))
  record('fastify inject, one resource (µs CPU/request)', await perRequest(withResource))
  record('runWithLocals sync (ns CPU/call)', await perCall(false))
  record('runWithLocals async (ns CPU/call)', await perCall(true))
}
for (const [name, values] of Object.entries(results)) console.log(`${name}: median ${median(values).toFixed(1)}`)
await without.close()
await withResource.close()
