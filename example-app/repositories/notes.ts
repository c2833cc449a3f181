import { requestLocal } from 'request-locals'
import { query } from '../db/transaction.js'
import { log } from '../log.js'
import '../locals.js'

export interface Note {
  id: number
  title: string
  body: string
  tags: string[]
}

// Every query is scoped to the current user, read from the request's locals:
// no caller can forget to pass it, or pass someone else's.
function ownerId (): number {
  const user = requestLocal.user
  if (user === undefined) throw new Error('notes repository used without an authenticated user')
  return user.id
}

const selectNotes = `
  SELECT n.id, n.title, n.body,
         COALESCE(array_agg(t.tag ORDER BY t.tag) FILTER (WHERE t.tag IS NOT NULL), '{}') AS tags
    FROM notes n LEFT JOIN note_tags t ON t.note_id = n.id
   WHERE n.owner_id = $1`

export async function listNotes (): Promise<Note[]> {
  const notes = await query<Note>(`${selectNotes} GROUP BY n.id ORDER BY n.id`, [ownerId()])
  log.info({ count: notes.length }, 'notes listed')
  return notes
}

export async function findNote (id: number): Promise<Note | undefined> {
  const rows = await query<Note>(`${selectNotes} AND n.id = $2 GROUP BY n.id`, [ownerId(), id])
  return rows[0]
}

export async function insertNote (title: string, body: string): Promise<number> {
  const [row] = await query<{ id: number }>('INSERT INTO notes (owner_id, title, body) VALUES ($1, $2, $3) RETURNING id', [ownerId(), title, body])
  log.info({ noteId: row.id }, 'note inserted')
  return row.id
}

export async function insertTags (noteId: number, tags: string[]): Promise<void> {
  for (const tag of tags) await query('INSERT INTO note_tags (note_id, tag) VALUES ($1, $2)', [noteId, tag])
}

export async function deleteNote (id: number): Promise<boolean> {
  const rows = await query('DELETE FROM notes WHERE owner_id = $1 AND id = $2 RETURNING id', [ownerId(), id])
  log.info({ noteId: id, deleted: rows.length === 1 }, 'note delete')
  return rows.length === 1
}
