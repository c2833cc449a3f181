// Import rules for src/, run by `npm run lint`. Type-only imports count: a
// cycle through types still ties the modules into one knot.
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'src/ modules form layers: entry points, adapters, then core. An import cycle breaks them.',
      from: { path: '^src/' },
      to: { circular: true }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' }
  }
}
