// The keys the tests store, declared the way an application declares its own.
export interface TestUser { id: string }

declare module '../../src/index.js' {
  interface RequestLocals {
    user?: TestUser
    tenant?: string
    tags?: string[]
    seen?: string
    since?: Date
  }
}
