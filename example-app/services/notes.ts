import { HttpError } from '../errors.js'
import { log } from '../log.js'
import * as notes from '../repositories/notes.js'
import type { Note } from '../repositories/notes.js'

export interface NewNote {
  title: string
  body?: string
  tags?: string[]
}

// The service knows the current user through the repositories' locals; its
// signatures carry only what the caller really decides.

export function listNotes (): Promise<Note[]> {
  return notes.listNotes()
}

export async function getNote (id: number): Promise<Note> {
  const note = await notes.findNote(id)
  if (note === undefined) throw new HttpError(404, `Note ${id} not found.`)
  return note
}

/**
 * Writes the note, then its tags: two statements in the request's one
 * transaction, so a failing tag leaves no note behind either.
 */
export async function createNote (input: NewNote): Promise<Note> {
  const id = await notes.insertNote(input.title, input.body ?? '')
  await notes.insertTags(id, [...new Set(input.tags ?? [])])
  log.info({ noteId: id }, 'note created')
  return getNote(id)
}

export async function deleteNote (id: number): Promise<void> {
  if (!await notes.deleteNote(id)) throw new HttpError(404, `Note ${id} not found.`)
}
