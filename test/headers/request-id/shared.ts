import type { Test } from 'tap'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import fastifyRequestLocals, { type FastifyRequestLocalsOptions } from '../../../src/fastify.js'
import { compileRequestIdPolicy, type IdentityOptions, type RequestIdPolicy } from '../../../src/headers/request-id.js'
import { requestId, traceId } from '../../../src/index.js'
import { captureLogs, type LogLine } from '../../helpers/logs.js'

// What the request-id tests share: the shape of a fresh id, one valid
// traceparent, the policy an adapter compiles from its options, and a
// Fastify app that answers with the ids its route sees.

/** A fresh id: a version 4 UUID. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** A valid W3C traceparent, whose trace id is TRACE_ID. */
export const validTraceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
export const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'

/** The policy every adapter compiles from these options. */
export function policyOf (options: IdentityOptions): RequestIdPolicy {
  return compileRequestIdPolicy(options, 'test') as RequestIdPolicy
}

/** What the route of `fastifyWith` answers: the id read the way service code reads it, and Fastify's. */
export interface SeenIds { requestId: string, fastifyId: string, traceId?: string }

/**
 * A Fastify app with the plugin registered with `options`, logging into
 * `lines`, whose `GET /` answers {@link SeenIds}; closed when `t` ends.
 */
export async function fastifyWith (t: Test, options: FastifyRequestLocalsOptions = {}): Promise<{ app: FastifyInstance, lines: LogLine[] }> {
  const { logger, lines } = captureLogs()
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger })
  await app.register(fastifyRequestLocals, options)
  app.get('/', async (request) => ({ requestId: requestId(), fastifyId: request.id, traceId: traceId() }))
  t.teardown(() => app.close())
  return { app, lines }
}
