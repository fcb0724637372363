/**
 * Ingest with three batches in flight and SIGKILL the server once `killAfter` are acknowledged,
 * while the others are being encoded or written: what the durability tests then check against.
 */
import type { ServerProcess } from './server-process.js';

export interface KilledIngest {
  /** Batches answered 200 before the kill. */
  acknowledged: Set<number>;
  /** Batches sent (acknowledged or not). */
  sent: Set<number>;
  /** The next batch number not sent. */
  next: number;
}

/** `put(n)` sends batch n and resolves with its HTTP status (it rejects when the connection dies). */
export async function ingestUntilKilled(server: ServerProcess, killAfter: number, put: (n: number) => Promise<number>): Promise<KilledIngest> {
  const result: KilledIngest = { acknowledged: new Set(), sent: new Set(), next: 0 };
  let killed = false;
  const worker = async () => {
    while (!killed) {
      const n = result.next++;
      result.sent.add(n);
      try {
        const status = await put(n);
        if (status === 200 && !killed) result.acknowledged.add(n);
        if (result.acknowledged.size >= killAfter && !killed) {
          killed = true;
          server.proc.kill('SIGKILL');
        }
      } catch {
        return; // the connection died with the server
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  return result;
}
