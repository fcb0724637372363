/**
 * The console's only way to the service: the public API, same origin, with the API key the user
 * typed (kept for this tab only, in sessionStorage). Errors come back as ApiError (the API's code
 * and message) or Unreachable (no answer at all: the service is down or restarting).
 */

const KEY = 'qembed.apiKey';

/**
 * Where the API is: the path the console was loaded from, less its /console/ part, so that a
 * service behind a reverse proxy at a path prefix (https://host/qembed/console/) is called there.
 */
export const API_BASE = location.pathname.replace(/\/console(\/.*)?$/, '');

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** No HTTP answer: the service is not reachable (stopped, restarting, network gone). */
export class Unreachable extends Error {}

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (key: string) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

type Listener = () => void;

/** What every page needs to know about the connection: reachable or not, key needed or refused. */
export const connection = {
  reachable: true,
  /** Set when the API answered 401: the key is missing (no key stored) or refused. */
  unauthorized: null as null | { refused: boolean; message: string },
  /** Bumped when the service comes back or the key changes: pages load again. */
  generation: 0,
  listeners: new Set<Listener>(),
  notify() {
    for (const l of this.listeners) l();
  },
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  },
};

function markReachable(reachable: boolean): void {
  if (connection.reachable === reachable) return;
  connection.reachable = reachable;
  if (reachable) connection.generation++;
  connection.notify();
}

export interface RequestOptions {
  body?: unknown;
  /** Read the answer as text (GET /metrics). */
  text?: boolean;
  signal?: AbortSignal;
}

export async function api<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const key = apiKey.get();
  if (key) headers.authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(API_BASE + path, {
      method,
      headers,
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
      ...(options.signal && { signal: options.signal }),
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    markReachable(false);
    throw new Unreachable('the service does not answer: it may be restarting; the console reconnects by itself');
  }
  markReachable(true);
  if (response.ok) {
    if (response.status === 204) return undefined as T;
    return (options.text ? await response.text() : await response.json()) as T;
  }
  let code = `HTTP_${response.status}`;
  let message = response.statusText || 'the request failed';
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) {
    connection.unauthorized = { refused: key !== null, message };
    connection.notify();
  }
  throw new ApiError(response.status, code, message);
}

/** Watches GET /health (open without a key): marks the service reachable again after a restart. */
export function watchConnection(): () => void {
  let timer: ReturnType<typeof setTimeout>;
  let stopped = false;
  const tick = async () => {
    try {
      const r = await fetch(`${API_BASE}/health`, { headers: { accept: 'application/json' } });
      markReachable(r.status !== 0);
    } catch {
      markReachable(false);
    }
    if (!stopped) timer = setTimeout(tick, connection.reachable ? 5000 : 1000);
  };
  timer = setTimeout(tick, 1000);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
