import Fastify, { type FastifyError } from 'fastify'
import fastifyRequestLocals from 'request-locals/fastify'
import { rootLogger } from '../log.js'
import { authenticate } from '../services/auth.js'
import * as notes from '../services/notes.js'
import type { NewNote } from '../services/notes.js'
import { errorResponse } from './errors.js'

const idParams = {
  type: 'object',
  properties: { id: { type: 'integer', minimum: 1 } },
  required: ['id']
} as const

const newNote = {
  type: 'object',
  additionalProperties: false,
  required: ['title'],
  properties: {
    title: { type: 'string', minLength: 1, maxLength: 200 },
    body: { type: 'string', maxLength: 10000 },
    // Tag length is left to the database's CHECK constraint, so that a bad
    // tag fails after the note was inserted and shows the rollback.
    tags: { type: 'array', items: { type: 'string' }, maxItems: 20 }
  }
} as const

/** The notes API on Fastify. Routes only translate HTTP; services hold the logic. */
export async function buildFastifyApp () {
  const app = Fastify({ loggerInstance: rootLogger })
  // The request's transaction commits (or rolls back, when the request
  // failed) before the response is written: the client never sees a success
  // whose commit failed, and its next request reads its own writes.
  await app.register(fastifyRequestLocals, { endResourcesBeforeResponse: true })

  app.addHook('onRequest', async function authenticateRequest (request) {
    await authenticate(request.headers.authorization)
  })

  app.setErrorHandler(function sendError (error: FastifyError, request, reply) {
    if (error.validation !== undefined) {
      return reply.status(400).send({ error: `Invalid request: ${error.message}.` })
    }
    const { statusCode, body } = errorResponse(error)
    if (statusCode >= 500) request.log.error({ err: error }, 'request failed')
    return reply.status(statusCode).send(body)
  })

  app.get('/notes', async function listNotes () {
    return notes.listNotes()
  })

  app.post<{ Body: NewNote }>('/notes', { schema: { body: newNote } }, async function createNote (request, reply) {
    return reply.status(201).send(await notes.createNote(request.body))
  })

  app.get<{ Params: { id: number } }>('/notes/:id', { schema: { params: idParams } }, async function getNote (request) {
    return notes.getNote(request.params.id)
  })

  app.delete<{ Params: { id: number } }>('/notes/:id', { schema: { params: idParams } }, async function deleteNote (request, reply) {
    await notes.deleteNote(request.params.id)
    return reply.status(204).send()
  })

  return app
}
