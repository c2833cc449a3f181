// What this app keeps per request, declared once: every read and write of
// requestLocal in the app is typed by it.
export interface User {
  id: number
  name: string
}

declare module 'request-locals' {
  interface RequestLocals {
    /** Set by authentication; services and repositories read it. */
    user?: User
  }
}
