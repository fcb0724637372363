/** Loading API data in components: once, on an interval, and again after a reconnect or a new key. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, connection, type RequestOptions } from './api';

/** Re-renders when the connection changes; returns its generation (bumped on reconnect). */
export function useConnection(): typeof connection {
  const [, setTick] = useState(0);
  useEffect(() => connection.subscribe(() => setTick((n) => n + 1)), []);
  return connection;
}

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

/** GET `path` (null: nothing to load yet), again every `everyMs` if given. */
export function useApi<T>(path: string | null, everyMs?: number, options: RequestOptions = {}): Loaded<T> {
  const conn = useConnection();
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(false);
  const [nonce, setNonce] = useState(0);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  const text = options.text === true;
  const latest = useRef(0);
  useEffect(() => {
    if (path === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const controller = new AbortController();
    const load = async () => {
      const call = ++latest.current;
      setLoading(true);
      try {
        const value = await api<T>('GET', path, { text, signal: controller.signal });
        if (call === latest.current) {
          setData(value);
          setError(undefined);
        }
      } catch (e) {
        if ((e as Error).name === 'AbortError') return;
        if (call === latest.current) setError(e as Error);
      } finally {
        if (call === latest.current) setLoading(false);
      }
      if (everyMs !== undefined && !controller.signal.aborted) timer = setTimeout(load, everyMs);
    };
    void load();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [path, everyMs, nonce, conn.generation, text]);
  return { data, error, loading, reload };
}

/** A call made by a button: its pending state and error, kept until the next try. */
export function useAction<A extends unknown[], R>(run: (...args: A) => Promise<R>) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<Error>();
  const act = useCallback(
    async (...args: A): Promise<R | undefined> => {
      setPending(true);
      setError(undefined);
      try {
        return await run(...args);
      } catch (e) {
        setError(e as Error);
        return undefined;
      } finally {
        setPending(false);
      }
    },
    [run],
  );
  return { act, pending, error, clearError: () => setError(undefined) };
}
