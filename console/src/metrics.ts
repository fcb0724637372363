/** Reads the Prometheus text GET /metrics answers: samples by name with their labels. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

export interface RouteFigures {
  route: string;
  requests: number;
  errors: number;
  meanMs: number;
  /** Upper bound of the histogram bucket holding the 95th percentile. */
  p95Ms: number | null;
}

/** Requests, errors (4xx and 5xx), mean and p95 latency by route, busiest first. */
export function routeFigures(samples: Sample[]): RouteFigures[] {
  const byRoute = new Map<string, { requests: number; errors: number; sum: number; count: number; buckets: [number, number][] }>();
  const get = (route: string) => {
    let r = byRoute.get(route);
    if (!r) byRoute.set(route, (r = { requests: 0, errors: 0, sum: 0, count: 0, buckets: [] }));
    return r;
  };
  for (const s of samples) {
    const route = s.labels.route;
    if (route === undefined) continue;
    if (s.name === 'qembed_http_requests_total') {
      const r = get(route);
      r.requests += s.value;
      if (Number(s.labels.status) >= 400) r.errors += s.value;
    } else if (s.name === 'qembed_http_request_duration_seconds_sum') get(route).sum += s.value;
    else if (s.name === 'qembed_http_request_duration_seconds_count') get(route).count += s.value;
    else if (s.name === 'qembed_http_request_duration_seconds_bucket' && s.labels.le !== '+Inf') get(route).buckets.push([Number(s.labels.le), s.value]);
  }
  return [...byRoute.entries()]
    .map(([route, r]) => {
      const buckets = r.buckets.sort((a, b) => a[0] - b[0]);
      const p95 = buckets.find(([, c]) => c >= 0.95 * r.count);
      return { route, requests: r.requests, errors: r.errors, meanMs: r.count ? (1000 * r.sum) / r.count : 0, p95Ms: p95 ? p95[0] * 1000 : null };
    })
    .filter((r) => r.requests > 0)
    .sort((a, b) => b.requests - a.requests);
}

export const total = (samples: Sample[], name: string) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
