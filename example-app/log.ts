import pino from 'pino'
import { requestLogger } from 'request-locals/pino'

// One logger for the whole app. Module code logs through `log`: inside a
// request its lines go through that request's logger (request id, user),
// outside one through `root`.
export const root = pino({ level: process.env.NODE_ENV === 'test' ? 'silent' : 'info' })
export const log = requestLogger(root)
