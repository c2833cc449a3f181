// The request data this app keeps, declared once: every read and write of
// requestLocal in the app is typed by it.
export interface User {
  id: string
  name: string
}

declare module 'request-locals' {
  interface RequestLocals {
    user?: User
  }
}
