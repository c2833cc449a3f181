import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { resolve } from 'node:path'
import { keepAliveAgent, send, type Received } from './helpers/http.js'
import { spawnTied, stopTied } from './helpers/children.js'

// The example app as a user runs it: a real server process driven over HTTP,
// its pino lines read from its stdout. Against the embedded database always,
// and against a PostgreSQL server when EXAMPLE_DATABASE_URL names one (.ci/run
// starts one).

const root = resolve(import.meta.dirname, '..')

interface LogLine { msg?: string, reqId?: string, userId?: number, noteId?: number, level: number }

interface Server {
  port: number
  lines: LogLine[]
  stop: () => Promise<void>
}

async function startServer (which: 'fastify' | 'express', databaseUrl: string | undefined): Promise<Server> {
  const child: ChildProcess = spawnTied(process.execPath, ['--import', 'tsx', 'example-app/server.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', EXAMPLE_SERVER: which, LOG_LEVEL: 'debug', DATABASE_URL: databaseUrl ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: LogLine[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => { lines.push(JSON.parse(line) as LogLine) })
  let stderr = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      const match = / at http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)
      if (match !== null) resolve(Number(match[1]))
    })
    child.on('exit', (code) => reject(new Error(`example server exited with ${String(code)}: ${stderr}`)))
  })
  return {
    port,
    lines,
    stop: () => stopTied(child)
  }
}

const tokens = { alice: 'alice-token', bob: 'bob-token' } as const
const userIds = { alice: 1, bob: 2 } as const
type Who = keyof typeof tokens

const databases: Array<[string, string | undefined]> = [['embedded PGlite', undefined]]
if (process.env.EXAMPLE_DATABASE_URL !== undefined && process.env.EXAMPLE_DATABASE_URL !== '') {
  databases.push(['PostgreSQL server', process.env.EXAMPLE_DATABASE_URL])
}

for (const [database, url] of databases) {
  for (const which of ['fastify', 'express'] as const) {
    t.test(`example app on ${which}, ${database}`, async (t) => {
      const server = await startServer(which, url)
      t.teardown(() => server.stop())
      const agent = keepAliveAgent(16)
      t.teardown(() => agent.destroy())
      const call = (who: Who | undefined, method: string, path: string, body?: unknown): Promise<Received> => send({
        port: server.port,
        agent,
        method,
        path,
        headers: {
          ...(who === undefined ? {} : { authorization: `Bearer ${tokens[who]}` }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' })
        },
        body: body === undefined ? undefined : JSON.stringify(body)
      })

      await t.test('missing or unknown tokens get 401 with a JSON error', async (t) => {
        const missing = await call(undefined, 'GET', '/notes')
        t.equal(missing.status, 401)
        t.match(missing.json(), { error: /Authorization: Bearer/ })
        const unknown = await send({ port: server.port, path: '/notes', headers: { authorization: 'Bearer nobody' } })
        t.equal(unknown.status, 401)
        t.same(unknown.json(), { error: 'Unknown token.' })
      })

      await t.test('bad bodies get 400 with a clear message', async (t) => {
        const res = await call('alice', 'POST', '/notes', { body: 'no title' })
        t.equal(res.status, 400)
        t.match(res.json(), { error: /title/ })
        const badId = await call('alice', 'GET', '/notes/abc')
        t.equal(badId.status, 400)
      })

      // Both users at once, their requests interleaved over shared sockets:
      // each must only ever see and change its own notes.
      const created: Record<Who, number[]> = { alice: [], bob: [] }
      await t.test('two users making interleaved concurrent requests only see their own notes', async (t) => {
        const writes = await Promise.all(Array.from({ length: 40 }, (_, i) => {
          const who: Who = i % 2 === 0 ? 'alice' : 'bob'
          return call(who, 'POST', '/notes', { title: `${who} note ${i}`, tags: [who] }).then((res) => ({ who, res }))
        }))
        for (const { who, res } of writes) {
          t.equal(res.status, 201)
          created[who].push(res.json<{ id: number }>().id)
        }
        const reads = await Promise.all(Array.from({ length: 40 }, (_, i) => {
          const who: Who = i % 2 === 0 ? 'alice' : 'bob'
          return call(who, 'GET', '/notes').then((res) => ({ who, notes: res.json<Array<{ id: number, title: string, tags: string[] }>>() }))
        }))
        let foreign = 0
        for (const { who, notes } of reads) {
          for (const note of notes) if (!note.title.startsWith(who) || note.tags[0] !== who) foreign++
          t.same(notes.map((note) => note.id).filter((id) => created[who].includes(id)).sort(), [...created[who]].sort())
        }
        t.equal(foreign, 0, 'no list held another user\'s note')
        const stolen = await call('bob', 'GET', `/notes/${created.alice[0]}`)
        t.equal(stolen.status, 404, 'bob cannot read alice\'s note')
        const removed = await call('bob', 'DELETE', `/notes/${created.alice[0]}`)
        t.equal(removed.status, 404, 'nor delete it')
        t.equal((await call('alice', 'DELETE', `/notes/${created.alice[0]}`)).status, 204, 'alice can')
        t.equal((await call('alice', 'GET', `/notes/${created.alice[0]}`)).status, 404)
      })

      await t.test('a request that fails mid-transaction leaves no partial write', async (t) => {
        const before = (await call('alice', 'GET', '/notes')).json<unknown[]>().length
        // The note is inserted, then its second tag breaks the database's
        // CHECK constraint: the whole transaction must roll back.
        const res = await call('alice', 'POST', '/notes', { title: 'half written', tags: ['ok', 'x'.repeat(30)] })
        t.equal(res.status, 400)
        t.same(res.json(), { error: 'Each tag must be 1 to 20 characters.' })
        const after = (await call('alice', 'GET', '/notes')).json<Array<{ title: string }>>()
        t.equal(after.length, before, 'the note was rolled back with its tags')
        t.notOk(after.some((note) => note.title === 'half written'))
      })

      await t.test('log lines carry the request id and the user id; start-up lines carry none', async (t) => {
        const startup = server.lines.filter((line) => line.msg === 'database ready' || line.msg === 'notes API ready')
        t.equal(startup.length, 2)
        t.ok(startup.every((line) => line.reqId === undefined && line.userId === undefined), 'start-up lines carry no request')
        const inserted = server.lines.filter((line) => line.msg === 'note inserted')
        t.ok(inserted.length >= 40)
        const owner = (noteId: number): number => created.alice.includes(noteId) ? userIds.alice : created.bob.includes(noteId) ? userIds.bob : -1
        const wrong = inserted.filter((line) => line.noteId !== undefined && owner(line.noteId) !== -1 && line.userId !== owner(line.noteId))
        t.same(wrong, [], 'every repository line names the user whose note it wrote')
        t.ok(inserted.every((line) => typeof line.reqId === 'string' && line.reqId !== ''), 'and carries a request id')
        // All the lines one request wrote, from route, service and repository,
        // agree on its user.
        const usersByRequest = new Map<string, Set<number>>()
        for (const line of server.lines) {
          if (line.reqId === undefined || line.userId === undefined) continue
          const set = usersByRequest.get(line.reqId) ?? new Set()
          set.add(line.userId)
          usersByRequest.set(line.reqId, set)
        }
        t.ok(usersByRequest.size >= 80)
        t.ok([...usersByRequest.values()].every((set) => set.size === 1), 'no request logged two users')
        const createdLines = server.lines.filter((line) => line.msg === 'note created')
        t.ok(createdLines.every((line) => inserted.some((other) => other.reqId === line.reqId && other.noteId === line.noteId)), 'service and repository lines of a request share its id')
      })
    })
  }
}
