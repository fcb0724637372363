/**
 * The changes log (the `changes` table): how several API processes on one database keep their
 * first stages in step. Every transaction that changes codes appends its rowids, and takes one
 * advisory lock first, so that changes (and the rowids of new documents) are in commit order.
 * Before each search a process's first stage asks for the changes it has not been given (one
 * indexed query, usually empty: othersChanges); a write reads them inside its own transaction,
 * after the lock, and returns them ahead of its own, so that its new rowids always come after
 * every other process's. A document acknowledged by one process is therefore found by the next
 * search of any other: consistency is immediate, at the cost of one round trip per search and
 * of writes taking turns (encoding, the slow part, happens before the transaction).
 *
 * The log is pruned: now and then a writing process deletes the changes older than the last
 * `keepChanges` and records through which (meta `changes_pruned_through`); a process that had
 * not read them drops its indexes, which load again from the rows (holding everything committed)
 * at their next use.
 */
import type { CodeChange } from '../store.js';
import type { PgBridge } from './bridge.js';
import { buffer } from './rows.js';

/** Every transaction that changes codes takes it (see above). */
const WRITE_LOCK = 7_211_002;

/** A row of the log: a document written or deleted, or (rowid 0) a whole collection's codes replaced. */
export interface LoggedChange {
  collection_id: number;
  rowid: number;
  deleted: boolean;
}

interface LogRow extends LoggedChange {
  seq: number;
}

export interface ChangeLogOptions {
  /** Changes kept for processes that have not caught up (default 1,000,000); one further behind reloads its indexes. */
  keepChanges?: number;
  /** A process prunes older changes once every this many of its writes (default 1,000). */
  pruneEvery?: number;
}

export interface ChangeLog {
  /** The changes other processes committed that this process has not been given yet, oldest first (codes read now). */
  othersChanges(): CodeChange[];
  /**
   * Runs `write` in a transaction under the write lock and logs the rows it reports for the other
   * processes; returns its result with the changes to apply here: the other processes' (read
   * after the lock) first, then its `own`.
   */
  writing<T>(write: () => { result: T; logged: readonly LoggedChange[]; own: readonly CodeChange[] }): { result: T; changes: CodeChange[] };
}

export function createChangeLog(pg: PgBridge, collectionIds: () => number[], options: ChangeLogOptions = {}): ChangeLog {
  const keepChanges = options.keepChanges ?? 1_000_000;
  const pruneEvery = options.pruneEvery ?? 1000;
  let seen = pg.query<{ seq: number }>(
    "SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT value::bigint FROM meta WHERE key = 'changes_pruned_through'), 0)) AS seq FROM changes",
  )[0]!.seq;
  let writes = 0;

  /** Logged rows as changes to apply; the codes of written rows are read now (a row deleted since is left out: its own change follows). */
  function asChanges(rows: readonly LogRow[]): CodeChange[] {
    const written = [...new Set(rows.filter((r) => !r.deleted && r.rowid > 0).map((r) => r.rowid))];
    const codes = new Map<number, Buffer>();
    if (written.length > 0) {
      for (const r of pg.query<{ rowid: number; code: Uint8Array }>('SELECT rowid, coalesce(first_code, binary_code) AS code FROM documents WHERE rowid = ANY($1::bigint[])', [written])) {
        codes.set(r.rowid, buffer(r.code));
      }
    }
    return rows.flatMap((r): CodeChange[] => {
      if (r.rowid === 0) return [{ type: 'dropped', collectionId: r.collection_id }]; // the whole collection changed: loaded again when next used
      if (r.deleted) return [{ type: 'deleted', collectionId: r.collection_id, rowids: [r.rowid] }];
      const code = codes.get(r.rowid);
      return code ? [{ type: 'written', collectionId: r.collection_id, entries: [{ rowid: r.rowid, code }] }] : [];
    });
  }

  /**
   * The changes after `seen`, in commit order, and the seq they reach. When some of them were
   * pruned (the first row then says through which seq), every collection's index is dropped
   * first. Only reads: `seen` moves when the changes are handed out.
   */
  function unseen(): { changes: CodeChange[]; through: number } {
    const rows = pg.query<LogRow>(
      `SELECT seq, collection_id, rowid, deleted FROM changes WHERE seq > $1
       UNION ALL SELECT -1, value::bigint, 0, false FROM meta WHERE key = 'changes_pruned_through' AND value::bigint > $1
       ORDER BY seq`,
      [seen],
    );
    const pruned = rows[0]?.seq === -1 ? rows.shift()!.collection_id : undefined;
    const changes: CodeChange[] = pruned === undefined ? [] : collectionIds().map((collectionId) => ({ type: 'dropped', collectionId }));
    changes.push(...asChanges(rows));
    return { changes, through: Math.max(seen, pruned ?? 0, rows.at(-1)?.seq ?? 0) };
  }

  /** Now and then, the oldest changes go: a process that had not read them reloads its indexes. */
  function prune(lastSeq: number): void {
    if (++writes % pruneEvery !== 0) return;
    const through = lastSeq - keepChanges;
    if (through <= 0) return;
    pg.query('DELETE FROM changes WHERE seq <= $1', [through]);
    pg.query(
      `INSERT INTO meta (key, value) VALUES ('changes_pruned_through', $1)
       ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value::bigint, excluded.value::bigint)::text`,
      [String(through)],
    );
  }

  return {
    othersChanges() {
      const { changes, through } = unseen();
      seen = through;
      return changes;
    },
    writing(write) {
      const done = pg.transaction(() => {
        pg.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
        const before = unseen();
        const { result, logged, own } = write();
        let through = before.through;
        if (logged.length > 0) {
          const seqs = pg.query<{ seq: number }>(
            `INSERT INTO changes (collection_id, rowid, deleted)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[]) RETURNING seq`,
            [logged.map((c) => c.collection_id), logged.map((c) => c.rowid), logged.map((c) => c.deleted)],
          );
          through = seqs.reduce((max, r) => Math.max(max, r.seq), through);
          prune(through);
        }
        return { result, changes: [...before.changes, ...own], through };
      });
      // Handed out only once committed: a write that rolled back leaves them to the next reader.
      seen = Math.max(seen, done.through);
      return { result: done.result, changes: done.changes };
    },
  };
}
