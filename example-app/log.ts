import pino from 'pino'
import { requestLogger } from 'request-locals/pino'

/** The process's one pino instance: start-up lines go straight through it. */
export const rootLogger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'notes' }
})

/**
 * The logger routes, services and repositories import: inside a request it
 * writes through that request's logger (request id, user id), outside
 * through the root.
 */
export const log = requestLogger(rootLogger)
