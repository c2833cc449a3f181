import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express'
import { expressRequestLocals } from 'request-locals/express'
import { endRequestResources } from 'request-locals'
import { HttpError } from '../errors.js'
import { log } from '../log.js'
import { authenticate } from '../services/auth.js'
import * as notes from '../services/notes.js'
import type { NewNote } from '../services/notes.js'
import { errorResponse } from './errors.js'

// The same services as the Fastify app, behind Express: only this file differs.

function noteId (raw: string | undefined): number {
  const id = Number(raw)
  if (!Number.isInteger(id) || id < 1) throw new HttpError(400, 'Invalid request: params/id must be a positive integer.')
  return id
}

function newNote (body: unknown): NewNote {
  const input = body as Partial<Record<string, unknown>> | undefined
  if (typeof input !== 'object' || input === null) throw new HttpError(400, 'Invalid request: body must be a JSON object.')
  const { title, body: text, tags, ...rest } = input
  if (Object.keys(rest).length > 0) throw new HttpError(400, `Invalid request: body has unknown properties (${Object.keys(rest).join(', ')}).`)
  if (typeof title !== 'string' || title.length < 1 || title.length > 200) throw new HttpError(400, 'Invalid request: body/title must be a string of 1 to 200 characters.')
  if (text !== undefined && (typeof text !== 'string' || text.length > 10000)) throw new HttpError(400, 'Invalid request: body/body must be a string of at most 10000 characters.')
  if (tags !== undefined && !(Array.isArray(tags) && tags.length <= 20 && tags.every((tag) => typeof tag === 'string'))) {
    throw new HttpError(400, 'Invalid request: body/tags must be an array of at most 20 strings.')
  }
  return { title, body: text as string | undefined, tags: tags as string[] | undefined }
}

const authenticateRequest: RequestHandler = async function authenticateRequest (req, _res, next) {
  try {
    await authenticate(req.headers.authorization)
    next()
  } catch (err) {
    next(err)
  }
}

const sendError: ErrorRequestHandler = async function sendError (error, _req, res, _next) {
  // Rolls the transaction back (the error makes the outcome 'failed'; a 4xx
  // answer alone would commit).
  await endRequestResources(error).catch((err: unknown) => { log.error({ err }, 'rollback failed') })
  const { statusCode, body } = errorResponse(error)
  if (statusCode >= 500) log.error({ err: error }, 'request failed')
  res.status(statusCode).json(body)
}

/** The notes API on Express 5. */
export function buildExpressApp (): Express {
  const app = express()
  // The request's transaction commits (or rolls back, when the answer is a
  // 5xx or the error handler below ended it) before the response is written:
  // the client never sees a success whose commit failed, and its next
  // request reads its own writes. No route has to remember it.
  app.use(expressRequestLocals({ endResourcesBeforeResponse: true }))
  app.use(express.json())
  app.use(authenticateRequest)

  app.get('/notes', async function listNotes (_req, res) {
    res.json(await notes.listNotes())
  })
  app.post('/notes', async function createNote (req, res) {
    res.status(201).json(await notes.createNote(newNote(req.body)))
  })
  app.get('/notes/:id', async function getNote (req, res) {
    res.json(await notes.getNote(noteId(req.params.id)))
  })
  app.delete('/notes/:id', async function deleteNote (req, res) {
    await notes.deleteNote(noteId(req.params.id))
    res.status(204).end()
  })

  app.use(sendError)
  return app
}
