/** A saturating search load on a server for a while (the cost benches: quality-cost, fit-cost): searches/s, p50 and failures. */
import autocannon from 'autocannon';

/** POST /search with `bodies` in turn from `connections` clients for `seconds`. */
export async function searchLoad(url: string, bodies: readonly string[], connections: number, seconds: number): Promise<{ rps: number; p50: number; failed: number }> {
  let i = 0;
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    requests: [{ method: 'POST', path: '/search', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length] }) }],
  });
  return { rps: r.requests.total / r.duration, p50: r.latency.p50, failed: r.non2xx + r.errors };
}
