// koa2 is the npm alias under which Koa 2 is installed for the tests. It has
// no types of its own; its API, as the tests use it, is Koa 3's.
declare module 'koa2' {
  import Koa from 'koa'
  export default Koa
}
