import { AsyncLocalStorage } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import { describe, invalidArgumentError } from '../core/errors.js'
import { runScope } from '../lifecycle/scope-end.js'
import { assignValues, copyStore, emptyStore } from '../core/store.js'
import { attachRequestId, inheritIdentity } from '../core/scope-state.js'
import { reopenedIdentity, type LocalsValues } from '../jobs/snapshot.js'
import type { LocalsStorage, Store } from '../core/storage.js'

// runWithLocals ends its scope the way lifecycle/ ends a request's (its
// resources are released when fn settles) and reopens the identity a jobs/
// snapshot carries, so it lives above both rather than in core.

/** The functions that open, find and carry scopes of one storage. */
export interface ScopeFunctions<T extends object> {
  runWithLocals: <R>(values: LocalsValues<T>, fn: () => R) => R
  tryGetLocals: () => T | undefined
  hasLocals: () => boolean
  bindLocals: <F extends (...args: never[]) => unknown>(fn: F) => F
}

export function createScopeFunctions<T extends object> (storage: LocalsStorage): ScopeFunctions<T> {
  function runWithLocals<R> (values: LocalsValues<T>, fn: () => R): R {
    if (typeof fn !== 'function') {
      throw invalidArgumentError(`runWithLocals(values, fn) expects fn to be a function; found ${describe(fn)}. Pass the work to run, e.g. runWithLocals({ tenant: 'jobs' }, () => work()).`)
    }
    // A nested scope starts from a copy, so its writes never leak outward;
    // it owns the resources it creates (the copy leaves symbol keys behind).
    const parent = storage.getStore()
    const store = emptyStore()
    if (parent !== undefined) copyStore(store, parent)
    assignValues(store, values, 'runWithLocals(values)', true)
    // A snapshot's identity (a job of another request) replaces the
    // enclosing scope's: its lines must carry the request that queued it.
    const identity = reopenedIdentity(values as Store)
    if (identity !== undefined) {
      attachRequestId(store, identity.requestId ?? randomUUID(), identity.trace)
    } else if (parent !== undefined) {
      inheritIdentity(store, parent)
    }
    return runScope(storage, store, fn)
  }

  function tryGetLocals (): T | undefined {
    return storage.getStore() as T | undefined
  }

  function hasLocals (): boolean {
    return storage.getStore() !== undefined
  }

  function bindLocals<F extends (...args: never[]) => unknown> (fn: F): F {
    if (typeof fn !== 'function') {
      throw invalidArgumentError(`bindLocals(fn) expects a function; found ${describe(fn)}.`)
    }
    // Binds the whole async context, not just this storage, so other
    // libraries' context (tracing, loggers) travels with the callback too.
    return AsyncLocalStorage.bind(fn)
  }

  return { runWithLocals, tryGetLocals, hasLocals, bindLocals }
}
