// Types of bench/cli.mjs for the TypeScript tests that import it (the
// interleaving schedules use its seeded generator).

export interface FlagSpec { type: 'string' | 'boolean', default?: string, help?: string }
export interface ReadFlags {
  given: (flag: string) => string | boolean | undefined
  value: (flag: string) => string | boolean | undefined
  number: (flag: string, value: unknown, min: number, max?: number) => number
}
export declare function defineFlags (spec: { command: string, envPrefix: string, flags: Record<string, FlagSpec> }): {
  envName: (flag: string) => string
  usage: (extra?: string[]) => string
  read: (argv?: string[], env?: NodeJS.ProcessEnv) => ReadFlags
}
export declare function list (value: string | undefined): string[]
export declare const nodeCache: string
export declare const thisNode: string
export declare function resolveNodes (entries: string[], cache: string): Array<{ bin: string, version: string }>
/** mulberry32: numbers in [0, 1), the same sequence for the same seed. */
export declare function seededRandom (seed: number): () => number
export declare function progress (total: number, unit: string, options?: { stream?: NodeJS.WriteStream, env?: NodeJS.ProcessEnv }): {
  shown: boolean
  update: (done: number, label?: string) => void
  end: () => void
}
