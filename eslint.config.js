import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'scratch/**', '.perf/**', '.build/**', 'node_modules/**']
  }),
  {
    rules: {
      // `void promise` marks a deliberately unawaited promise, and
      // `void requestLocal.key` a read done only for its throw.
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
