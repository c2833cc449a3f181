// @koa/multer ships no types; what the tests use of it: multer's own
// options, and its middleware wrapped for Koa.
declare module '@koa/multer' {
  import type { Options } from 'multer'
  import type { Middleware } from 'koa'
  interface KoaMulter {
    single: (field: string) => Middleware
  }
  export default function multer (options?: Options): KoaMulter
}
