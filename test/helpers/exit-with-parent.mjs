// Preloaded (NODE_OPTIONS=--import) into every Node process a test starts,
// and inherited by the processes those start: a process whose parent is gone
// (the test process was killed by a timeout, a bail-out, a SIGKILL) is
// re-parented, so its parent pid changes; it then ends itself instead of
// running on as an orphan. A timer, not a handle: it never keeps the process
// alive on its own.
const parent = process.ppid
setInterval(function endWithParent () {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM')
}, 250).unref()
