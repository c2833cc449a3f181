import type { Adapter } from './app.js'
import type { Runtime } from './harness.js'

// Every target of the conformance suite, and where each runs. A target's
// framework is imported only when the target runs, so a runtime that cannot
// load a framework never imports it. `true` means the suite runs the target
// on that runtime; a string is the reason it does not, and is what the
// behaviour table in docs/runtimes.md shows.

/** One adapter, as the conformance suite runs it. */
export interface Target {
  /** The name cases show. */
  name: string
  /** What the behaviour table shows, when more than the name. */
  label?: string
  /** For each runtime: true when the suite runs there, or what the table says instead ("not supported: why", "not tested: why"). */
  runtimes: Record<Runtime, true | string>
  /** Imports the framework and returns the adapter. */
  load: () => Promise<Adapter>
}

/** The framework-free cases (core.ts): where they run. */
export const core: Pick<Target, 'name' | 'label' | 'runtimes'> = {
  name: 'core',
  label: 'core (runWithLocals, bindLocals, resources; no framework)',
  runtimes: { node: true, bun: true, deno: true }
}

/** Every target the conformance suite runs against. */
export const targets: Target[] = [
  {
    name: 'fastify',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/fastify.js')).fastify
  },
  {
    name: 'express 5',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/express.js')).express5Adapter
  },
  {
    name: 'express 4',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/express.js')).express4Adapter
  },
  {
    name: 'node:http',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/node-http.js')).nodeHttp
  },
  {
    name: 'node:http2',
    label: 'node:http2 (compatibility API)',
    runtimes: { node: true, bun: 'not tested: CI runs the HTTP/2 targets on Node only', deno: 'not tested: CI runs the HTTP/2 targets on Node only' },
    load: async () => (await import('./targets/http2.js')).nodeHttp2
  },
  {
    name: 'fastify (HTTP/2)',
    runtimes: { node: true, bun: 'not tested: CI runs the HTTP/2 targets on Node only', deno: 'not tested: CI runs the HTTP/2 targets on Node only' },
    load: async () => (await import('./targets/http2.js')).fastifyHttp2
  },
  {
    name: 'koa 3',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/koa.js')).koa3
  },
  {
    name: 'koa 2',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/koa.js')).koa2
  },
  {
    name: 'nestjs (express)',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/nestjs.js')).nestExpress
  },
  {
    name: 'nestjs (fastify)',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/nestjs.js')).nestFastify
  },
  {
    name: 'hono',
    label: 'hono (@hono/node-server on Node; Bun.serve, Deno.serve)',
    runtimes: { node: true, bun: true, deno: true },
    load: async () => (await import('./targets/hono.js')).hono
  }
]
