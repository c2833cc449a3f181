// Which server variants exist, what they are compared with, and whether they
// can run on this checkout. Importing this file loads no framework: the
// builders are imported only inside the server process.
import { existsSync } from 'node:fs'

const dist = new URL('../../dist/', import.meta.url)

/** The adapter's built entry point, or why it cannot run. */
function needsDist (file) {
  return () => existsSync(new URL(file, dist)) ? undefined : `dist/${file} not built (run npm run build; the adapter may not be merged yet)`
}

export const variants = [
  { name: 'fastify-bare', framework: 'fastify', label: 'bare Fastify' },
  { name: 'fastify-hand-rolled-als', framework: 'fastify', label: 'hand-rolled AsyncLocalStorage.run (floor)' },
  { name: 'fastify-request-locals', framework: 'fastify', label: 'request-locals', unavailable: needsDist('fastify.js') },
  { name: 'fastify-request-locals-store', framework: 'fastify', label: 'request-locals, through tryGetLocals()', unavailable: needsDist('fastify.js') },
  { name: 'fastify-request-context', framework: 'fastify', label: '@fastify/request-context' },
  { name: 'fastify-cls-rtracer', framework: 'fastify', label: 'cls-rtracer' },
  { name: 'express-bare', framework: 'express', label: 'bare Express' },
  { name: 'express-hand-rolled-als', framework: 'express', label: 'hand-rolled AsyncLocalStorage.run (floor)' },
  { name: 'express-request-locals', framework: 'express', label: 'request-locals', unavailable: needsDist('express.js') },
  { name: 'express-request-locals-store', framework: 'express', label: 'request-locals, through tryGetLocals()', unavailable: needsDist('express.js') },
  { name: 'express-http-context', framework: 'express', label: 'express-http-context' },
  { name: 'express-cls-rtracer', framework: 'express', label: 'cls-rtracer' },
  { name: 'express4-bare', framework: 'express4', label: 'bare Express 4' },
  { name: 'express4-hand-rolled-als', framework: 'express4', label: 'hand-rolled AsyncLocalStorage.run (floor)' },
  { name: 'express4-request-locals', framework: 'express4', label: 'request-locals', unavailable: needsDist('express.js') },
  { name: 'express4-http-context', framework: 'express4', label: 'express-http-context' },
  { name: 'http-bare', framework: 'http', label: 'bare node:http' },
  { name: 'http-hand-rolled-als', framework: 'http', label: 'hand-rolled AsyncLocalStorage.run (floor)' },
  { name: 'http-request-locals', framework: 'http', label: 'request-locals', unavailable: needsDist('http.js') },
  { name: 'http-request-locals-store', framework: 'http', label: 'request-locals, through tryGetLocals()', unavailable: needsDist('http.js') }
]

/** The bare server each variant's ratio is computed against. */
export function baselineOf (variant) {
  return `${variant.framework}-bare`
}

/** Why a variant cannot run here, or undefined when it can. */
export function whyUnavailable (variant) {
  return variant.unavailable?.()
}
