// express4 is the npm alias under which Express 4 is installed for the tests.
// It has no types of its own; its API, as the tests use it, is Express 5's.
declare module 'express4' {
  import express from 'express'
  export default express
}
