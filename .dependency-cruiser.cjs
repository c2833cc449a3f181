// Import rules for src/, run by `npm run lint`. Type-only imports count: a
// cycle through types still ties the modules into one knot.
//
// src/ is built in layers (docs/architecture.md). Each folder sits on one
// level and may import only from folders on lower levels: never from a folder
// on its own level (siblings stay independent of each other), never upward.
// The entry points (src/*.ts) are the top level; they may import any folder,
// and nothing in a folder may import them.
const layers = [
  {
    folder: 'protocol',
    level: 0,
    why: 'protocol/ holds what every installed copy of the package agrees on (the registered symbols, the globalThis registry). ' +
      'It is the base every other layer may use, so it imports nothing.'
  },
  {
    folder: 'diagnostics',
    level: 1,
    why: "diagnostics/ (debug mode, the in-flight count) is read by core's NO_SCOPE error, so it sits below core " +
      'and reaches only the protocol: an import of core from here would tie the two into one layer.'
  },
  {
    folder: 'core',
    level: 2,
    why: 'core/ (the store, the proxy, errors, options, per-scope state) is what every feature builds on. ' +
      'It knows nothing of headers, resources, snapshots, servers or the composed instance: ' +
      'a feature that core needs belongs in core, or is passed in from above.'
  },
  {
    folder: 'headers',
    level: 3,
    why: 'headers/ (request ids, trace context, baggage) reads and writes the store through core; ' +
      'it is independent of how a scope ends (lifecycle/) and of what is built on it.'
  },
  {
    folder: 'lifecycle',
    level: 3,
    why: 'lifecycle/ (how a scope ends, the resources it releases) works on core alone; ' +
      'it is independent of the headers (headers/) and of what is built on it.'
  },
  {
    folder: 'jobs',
    level: 4,
    why: 'jobs/ (snapshots for queues and workers) carries the request id and trace (headers/) across processes; ' +
      'servers and the composed instance build on it, not the reverse.'
  },
  {
    folder: 'adapters',
    level: 4,
    why: 'adapters/ holds what every adapter shares whatever its server (the one option shape); ' +
      'the node:http machinery (node/) and the entry points build on it, not the reverse.'
  },
  {
    folder: 'node',
    level: 5,
    why: 'node/ opens scopes for node:http based servers from the layers below; ' +
      'it must not depend on the composed instance (api/), which runs without any server.'
  },
  {
    folder: 'api',
    level: 5,
    why: 'api/ composes one set of locals (createRequestLocals, runWithLocals …) from core, lifecycle/ and jobs/; ' +
      'it must not depend on any server machinery (node/), so that it works without one.'
  }
]

const folders = layers.map(({ folder }) => folder)

function layerRule ({ folder, level, why }) {
  const allowed = layers.filter((layer) => layer.level < level || layer.folder === folder).map((layer) => layer.folder)
  return {
    name: `layer-${folder}`,
    severity: 'error',
    comment: `${why} Allowed: ${allowed.join(', ')}.`,
    from: { path: `^src/${folder}/` },
    to: { path: '^src/[^/]+/', pathNot: `^src/(${allowed.join('|')})/` }
  }
}

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'src/ modules form layers (docs/architecture.md). An import cycle, even within a folder, breaks them.',
      from: { path: '^src/' },
      to: { circular: true }
    },
    ...layers.map(layerRule),
    {
      name: 'no-entry-point-below',
      severity: 'error',
      comment: 'The entry points (src/*.ts) are the top layer: each is one public export, built from the folders. ' +
        'A folder importing one would depend on the public surface (and on a framework an entry point loads); ' +
        'move what both need into the folder instead.',
      from: { path: '^src/[^/]+/' },
      to: { path: '^src/[^/]+\\.ts$' }
    },
    {
      name: 'layer-unknown-folder',
      severity: 'error',
      comment: 'Every folder of src/ has a place in the layers. A new folder needs its level here and in docs/architecture.md ' +
        'before it is used, or its imports go unchecked.',
      from: { path: '^src/[^/]+/', pathNot: `^src/(${folders.join('|')})/` },
      to: {}
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' }
  }
}
