import type { ServerResponse } from 'node:http'

// Koa's error handler (ctx.onerror) removes every header the response had
// before it answers, keeping only the error's own `err.headers`, and an
// application's handler may do the same. The request id is echoed on every
// response, errors too, so for Koa it is set again as the head is written,
// when nothing has set that header since.

/**
 * Makes `response` carry the header `name: id` when its head is written,
 * whatever removed it before.
 */
export function echoAtHead (response: ServerResponse, name: string, id: string): void {
  const writeHead = response.writeHead
  response.writeHead = function writeHeadWithRequestId (this: ServerResponse): ServerResponse {
    if (!this.hasHeader(name)) this.setHeader(name, id)
    return Reflect.apply(writeHead, this, arguments) as ServerResponse
  } as ServerResponse['writeHead']
}
