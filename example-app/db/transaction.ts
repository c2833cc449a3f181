import { defineRequestResource } from 'request-locals'
import type { Database, Transaction } from './database.js'

let database: Database | undefined

/** Points the per-request transaction at the app's database, once, at start. */
export function useDatabase (db: Database): void {
  database = db
}

/**
 * The request's database transaction: begun by the first query a request
 * makes, shared by every repository that request calls, committed when the
 * request succeeds and rolled back when it fails or the client goes away.
 * Requests that never touch the database never begin one.
 */
export const transaction = defineRequestResource<Transaction>({
  name: 'db transaction',
  create: () => {
    if (database === undefined) throw new Error('useDatabase(db) was not called at start')
    return database.begin()
  },
  dispose: (tx, outcome) => outcome.ok ? tx.commit() : tx.rollback()
})

/** Runs one query in the current request's transaction. */
export async function query<Row> (sql: string, params?: unknown[]): Promise<Row[]> {
  const tx = await transaction.get()
  return tx.query<Row>(sql, params)
}
