import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { schema } from './schema.js'

/** One open transaction: the queries of one request. */
export interface Transaction {
  query: <Row>(sql: string, params?: unknown[]) => Promise<Row[]>
  commit: () => Promise<void>
  rollback: () => Promise<void>
}

/** The app's database: PostgreSQL, embedded (PGlite) or a server (pg). */
export interface Database {
  readonly description: string
  begin: () => Promise<Transaction>
  close: () => Promise<void>
}

/**
 * Opens the database and creates the schema and seed data. With a
 * `DATABASE_URL` it uses that PostgreSQL server through a pool (each
 * transaction leases its own client); without one, an in-memory PGlite.
 */
export async function openDatabase (url = process.env.DATABASE_URL): Promise<Database> {
  const database = url === undefined || url === '' ? await openEmbedded() : openServer(url)
  const setup = await database.begin()
  try {
    for (const statement of schema) await setup.query(statement)
    await setup.commit()
  } catch (err) {
    await setup.rollback()
    throw err
  }
  return database
}

// PGlite is one connection: two requests' transactions interleaved on it
// would be one transaction. Each transaction holds this lock from BEGIN to
// COMMIT/ROLLBACK, so concurrent requests' transactions run one after another.
async function openEmbedded (): Promise<Database> {
  const db = new PGlite()
  await db.waitReady
  let tail: Promise<void> = Promise.resolve()

  return {
    description: 'embedded PostgreSQL (PGlite, in memory)',
    async begin () {
      let release!: () => void
      const previous = tail
      tail = new Promise((resolve) => { release = resolve })
      await previous
      try {
        await db.query('BEGIN')
      } catch (err) {
        release()
        throw err
      }
      const end = async (sql: string): Promise<void> => {
        try { await db.query(sql) } finally { release() }
      }
      return {
        query: async <Row>(sql: string, params?: unknown[]) => (await db.query<Row>(sql, params)).rows,
        commit: () => end('COMMIT'),
        rollback: () => end('ROLLBACK')
      }
    },
    close: () => db.close()
  }
}

function openServer (url: string): Database {
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  return {
    description: `PostgreSQL server (${new URL(url).host})`,
    async begin () {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
      } catch (err) {
        client.release(err as Error)
        throw err
      }
      const end = async (sql: string): Promise<void> => {
        try {
          await client.query(sql)
          client.release()
        } catch (err) {
          // A client whose COMMIT or ROLLBACK failed is broken: destroy it.
          client.release(err as Error)
          throw err
        }
      }
      return {
        query: async <Row>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as Row[],
        commit: () => end('COMMIT'),
        rollback: () => end('ROLLBACK')
      }
    },
    close: () => pool.end()
  }
}
