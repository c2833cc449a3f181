// A TypeDoc plugin that names each module of the API reference after the
// import specifier a user writes: src/index.ts is `request-locals`,
// src/fastify.ts is `request-locals/fastify`. Without it the modules would be
// called `index`, `fastify`, … (the file names), which says nothing about how
// to import them.
import { Converter, ReflectionKind } from 'typedoc'

/** @param {import('typedoc').Application} app */
export function load (app) {
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (_context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Module)) return
    reflection.name = reflection.name === 'index' ? 'request-locals' : `request-locals/${reflection.name}`
  })
}
