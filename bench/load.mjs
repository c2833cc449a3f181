// Drives one server with autocannon over keep-alive connections (autocannon
// reuses each connection for every request it sends on it). Pipelining keeps
// several requests in flight per connection, so that one core of autocannon
// can saturate one core of server: without it the server idles while the
// load generator prepares the next request, and the figures measure the
// load generator instead.
import autocannon from 'autocannon'

function run (options) {
  return new Promise((resolve, reject) => {
    autocannon(options, (err, result) => {
      if (err) return reject(err)
      if (result.errors > 0 || result.non2xx > 0 || result.timeouts > 0) {
        return reject(new Error(`${options.method} ${options.url}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx responses; the variant is broken.`))
      }
      resolve(result)
    })
  })
}

function request (port, scenario, { connections, pipelining = 1 }) {
  if (scenario.pipelining !== undefined) pipelining = Math.min(pipelining, scenario.pipelining)
  return {
    url: `http://127.0.0.1:${port}${scenario.path}`,
    method: scenario.method,
    headers: scenario.headers,
    body: scenario.body,
    connections,
    pipelining,
    // autocannon checks for the end of a run at each sample: every 100 ms
    // keeps a 0.5 s run 0.5 s long (its default of 1 s rounds runs up).
    sampleInt: 100
  }
}

/** Load for `seconds`; returns requests per second and latency percentiles (ms). */
export async function measure (port, scenario, { seconds, ...load }) {
  const result = await run({ ...request(port, scenario, load), duration: seconds })
  return {
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99
  }
}

/** Sends exactly `amount` requests. */
export async function drive (port, scenario, { amount, ...load }) {
  await run({ ...request(port, scenario, load), amount })
}
