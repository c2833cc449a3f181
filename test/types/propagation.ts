// Compiled by `npm run typecheck` (tsc), not run. The keys come from the
// augmentation in augmentation.ts (tenant: string, user?: User).
import express from 'express'
import Fastify from 'fastify'
import pino from 'pino'
import fastifyRequestLocals from 'request-locals/fastify'
import { expressRequestLocals, type InboundBaggageOptions } from 'request-locals/express'
import { propagateRequestLocals, propagationHeaders, type PropagationOptions } from 'request-locals/propagation'
import { otelLogMixin, requestIdFromActiveSpan } from 'request-locals/opentelemetry'

const stop: () => void = propagateRequestLocals()
stop()
propagateRequestLocals({ baggage: ['tenant'], traceparent: false, requestIdHeader: false, origins: ['http://b.internal'] })
// @ts-expect-error only declared locals travel as baggage
propagateRequestLocals({ baggage: ['nope'] })
// @ts-expect-error the id header is a name or false
propagateRequestLocals({ requestIdHeader: true })
const headers: Record<string, string> = propagationHeaders({ baggage: ['tenant'] })
const options: PropagationOptions = { traceparent: true }

const baggage: InboundBaggageOptions = { keys: ['tenant', 'user'], identityKeys: ['user'], parse: { tenant: (value) => value.toLowerCase() } }
// @ts-expect-error parse returns the local's type
const wrongParse: InboundBaggageOptions = { keys: ['tenant'], parse: { tenant: (value) => value.length } }
// @ts-expect-error only declared locals are accepted
const unknownKey: InboundBaggageOptions = { keys: ['nope'] }

const app = Fastify()
await app.register(fastifyRequestLocals, { upstream: { trust: true, baggage }, startTrace: true, requestId: { generate: requestIdFromActiveSpan } })
await app.register(fastifyRequestLocals, { requestId: { generate: (req) => String(req.headers['x-tenant']) }, endResourcesBeforeResponse: true })
// @ts-expect-error renamed in 1.0: upstream.trust
await app.register(fastifyRequestLocals, { requestId: { trustUpstream: true } })
// @ts-expect-error upstream.trust is required
await app.register(fastifyRequestLocals, { upstream: { baggage } })
// @ts-expect-error generate returns a string
await app.register(fastifyRequestLocals, { requestId: { generate: () => 42 } })
express().use(expressRequestLocals({ upstream: { trust: true, baggage: { keys: ['tenant'] } } }))

const mixin: () => Record<string, string> = otelLogMixin({ traceIdKey: 'traceId' })
pino({ mixin })
// @ts-expect-error field names are strings
otelLogMixin({ spanIdKey: 1 })

export { headers, options, wrongParse, unknownKey }
