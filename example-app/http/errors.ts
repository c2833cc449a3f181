import { HttpError } from '../errors.js'

/** The JSON body and status every error response of the app has, on both servers. */
export function errorResponse (error: unknown): { statusCode: number, body: { error: string } } {
  if (error instanceof HttpError) return { statusCode: error.statusCode, body: { error: error.message } }
  // PostgreSQL's check_violation: the tag constraint in db/schema.ts.
  if ((error as { code?: unknown }).code === '23514') return { statusCode: 400, body: { error: 'Each tag must be 1 to 20 characters.' } }
  const status = (error as { statusCode?: unknown }).statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) return { statusCode: status, body: { error: (error as Error).message } }
  return { statusCode: 500, body: { error: 'Internal Server Error' } }
}
