/**
 * The PostgreSQL implementation of `Store` (QEMBED_DATABASE_URL=postgres://...), for several
 * API processes on one database. Same tables and meaning as SQLite's (migrations/postgres/),
 * statements through the synchronous bridge (bridge.ts).
 *
 * The first stage is the same in-memory index per collection as SQLite's (memory-index/),
 * in every process. Processes keep their indexes in step through the `changes` table: every
 * transaction that changes codes appends its rowids, and takes one advisory lock first, so
 * that changes (and the rowids of new documents) are in commit order. Before each search a
 * process reads the changes it has not seen (one indexed query, usually empty) and applies
 * them; a write reads them inside its own transaction, after the lock, so its own new rowids
 * always come after every other process's. A document acknowledged by one process is
 * therefore found by the next search of any other: consistency is immediate, at the cost of
 * one round trip per search and of writes taking turns (encoding, the slow part, happens
 * before the transaction).
 */
import { errors } from '../../errors.js';
import { createIndexRegistry } from '../../first-stage/index-registry.js';
import { type DocumentWrite, MAX_ROWID, type MetadataFilter, type MetadataWrite, StaleWriteError, type Store, type StoredDocument, type CollectionRow, type StagedCodes } from '../store.js';
import { createPgBridge, PgError, type PgBridge } from './bridge.js';
import { migratePostgres } from './migrate.js';

/** Every transaction that changes codes takes it (see above). */
const WRITE_LOCK = 7_211_002;
/** Held (with the collection id) by the process that re-encodes a collection. */
const REENCODE_LOCK = 7_211;
/** Rows a paged read takes at a time (iterations over a whole collection). */
const PAGE = 10_000;

const isUniqueViolation = (e: unknown) => e instanceof PgError && e.code === '23505';
const isForeignKeyViolation = (e: unknown) => e instanceof PgError && e.code === '23503';

type DocRow = { rowid: number; doc_id: string; text: string; metadata: string; updated_at: string; text_sha256: string };
const DOC_COLUMNS = 'rowid, doc_id, text, metadata, updated_at, text_sha256';
const toDocument = (r: DocRow): StoredDocument => ({ rowid: r.rowid, docId: r.doc_id, text: r.text, metadata: r.metadata, updatedAt: r.updated_at, textSha256: r.text_sha256 });
/** bytea arrives from the bridge as a Uint8Array: the store speaks Buffers. */
const buffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

interface Change {
  seq: number;
  collection_id: number;
  rowid: number;
  deleted: boolean;
}

export interface PostgresStore extends Store {
  close(): Promise<void>;
}

/**
 * Where the Hamming first stage runs: `memory` (the in-memory index of each process, the
 * default), `exact` (PostgreSQL sorts every document by `<~>`) or `hnsw` (pgvector's HNSW index
 * over the bit codes, approximate, with iterative scans so that filters still find k). The
 * asymmetric first stage always runs in memory (the index is then loaded at first use).
 */
export type PgFirstStage = 'memory' | 'exact' | 'hnsw';
export const PG_FIRST_STAGES: readonly PgFirstStage[] = ['memory', 'exact', 'hnsw'];

export interface PostgresStoreOptions {
  firstStage?: PgFirstStage;
  /** hnsw.ef_search of the HNSW first stage (at least the candidates asked for). */
  efSearch?: number;
  /** Changes kept for processes that have not caught up (default 1,000,000); one further behind reloads its indexes. */
  keepChanges?: number;
  /** A process prunes older changes once every this many of its writes (default 1,000). */
  pruneEvery?: number;
}

/** Connects, migrates and returns the store (throws 503 when the database cannot be reached). */
export function openPostgresStore(url: string, options: PostgresStoreOptions = {}): PostgresStore {
  const pg = createPgBridge(url);
  migratePostgres(pg);
  return createPostgresStore(pg, options);
}

/** A code as a bit-string literal ('0101…'), the first `bits` bits. */
const bitString = (code: Uint8Array, bits: number): string => {
  let out = '';
  for (let i = 0; i < bits; i++) out += (code[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
};

export function createPostgresStore(pg: PgBridge, options: PostgresStoreOptions = {}): PostgresStore {
  const firstStage = options.firstStage ?? 'memory';
  const collectionById = (id: number) => pg.query<CollectionRow>('SELECT * FROM collections WHERE id = $1', [id])[0];
  const listCollections = () => pg.query<CollectionRow>('SELECT * FROM collections ORDER BY name COLLATE "C"');

  /** Pages of a query over one collection, by rowid. */
  function* paged<T extends { rowid: number }>(sql: (after: string) => string, params: unknown[]): Generator<T> {
    let after = 0;
    for (;;) {
      const rows = pg.query<T>(sql(`rowid > $${params.length + 1}`) + ` ORDER BY rowid LIMIT ${PAGE}`, [...params, after]);
      yield* rows;
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.rowid;
    }
  }
  function* binaryCodes(collectionId: number): Generator<[number, Buffer]> {
    for (const r of paged<{ rowid: number; binary_code: Uint8Array }>((w) => `SELECT rowid, binary_code FROM documents WHERE collection_id = $1 AND ${w}`, [collectionId])) {
      yield [r.rowid, buffer(r.binary_code)];
    }
  }
  function* stagedCodes(collectionId: number, fingerprint: string): Generator<[number, Buffer]> {
    for (const r of paged<{ rowid: number; binary_code: Uint8Array }>(
      (w) => `SELECT rowid, binary_code FROM reencode_codes WHERE collection_id = $1 AND fingerprint = $2 AND ${w}`,
      [collectionId, fingerprint],
    )) {
      yield [r.rowid, buffer(r.binary_code)];
    }
  }

  const indexes = createIndexRegistry({ collection: collectionById, collections: listCollections, codes: binaryCodes, stagedCodes });

  // --- Keeping this process's indexes in step with the others' writes -----------------------
  let seen = pg.query<{ seq: number }>("SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT value::bigint FROM meta WHERE key = 'changes_pruned_through'), 0)) AS seq FROM changes")[0]!.seq;
  const keepChanges = options.keepChanges ?? 1_000_000;
  const pruneEvery = options.pruneEvery ?? 1000;
  let writes = 0;
  /**
   * The changes this process has not seen, in commit order. When some of them were pruned
   * (the first row then says through which seq), its indexes are dropped and loaded again from
   * the rows at their next use, which holds everything committed so far.
   */
  function unseen(): Change[] {
    const rows = pg.query<Change>(
      `SELECT seq, collection_id, rowid, deleted FROM changes WHERE seq > $1
       UNION ALL SELECT -1, value::bigint, 0, false FROM meta WHERE key = 'changes_pruned_through' AND value::bigint > $1
       ORDER BY seq`,
      [seen],
    );
    if (rows[0]?.seq !== -1) return rows;
    for (const c of listCollections()) indexes.dropped(c.id);
    seen = rows[0].collection_id;
    return rows.slice(1);
  }

  /** Applies changes read from the table (in commit order); the codes of written rows are read now. */
  function apply(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    const written = changes.filter((c) => !c.deleted && c.rowid > 0).map((c) => c.rowid);
    const codes = new Map<number, { collection_id: number; binary_code: Uint8Array }>();
    if (written.length > 0) {
      for (const r of pg.query<{ rowid: number; collection_id: number; binary_code: Uint8Array }>(
        'SELECT rowid, collection_id, binary_code FROM documents WHERE rowid = ANY($1::bigint[])',
        [[...new Set(written)]],
      )) {
        codes.set(r.rowid, r);
      }
    }
    for (const c of changes) {
      if (c.rowid === 0) indexes.dropped(c.collection_id); // the whole collection changed: loaded again when next used
      else if (c.deleted) indexes.removed(c.collection_id, [c.rowid]);
      else {
        const row = codes.get(c.rowid);
        if (!row) continue; // deleted since: its own change follows
        indexes.reserve(c.collection_id, 1);
        indexes.written(c.collection_id, [{ rowid: c.rowid, code: buffer(row.binary_code) }]);
      }
    }
    seen = Math.max(seen, changes[changes.length - 1]!.seq);
  }
  const sync = () => apply(unseen());

  /**
   * Runs a transaction that changes codes: under the write lock, with the changes of other
   * processes read after the lock (applied after the commit, before this one's own).
   */
  function writing<T>(fn: () => { result: T; changes: Omit<Change, 'seq'>[] }): { result: T; before: Change[]; own: Change[] } {
    return pg.transaction(() => {
      pg.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      const before = unseen();
      const { result, changes } = fn();
      const own =
        changes.length === 0
          ? []
          : pg.query<Change>(
              `INSERT INTO changes (collection_id, rowid, deleted)
               SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[]) RETURNING seq, collection_id, rowid, deleted`,
              [changes.map((c) => c.collection_id), changes.map((c) => c.rowid), changes.map((c) => c.deleted)],
            );
      // Now and then, the oldest changes go: a process that had not read them reloads its indexes.
      if (own.length > 0 && ++writes % pruneEvery === 0) {
        const through = own[own.length - 1]!.seq - keepChanges;
        if (through > 0) {
          pg.query('DELETE FROM changes WHERE seq <= $1', [through]);
          pg.query(
            `INSERT INTO meta (key, value) VALUES ('changes_pruned_through', $1)
             ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value::bigint, excluded.value::bigint)::text`,
            [String(through)],
          );
        }
      }
      return { result, before, own };
    });
  }
  /** After a commit: others' changes first, then this process's own (no need to read its codes back). */
  function caughtUp(before: Change[], own: Change[]): void {
    apply(before);
    if (own.length > 0) seen = Math.max(seen, own[own.length - 1]!.seq);
  }

  /** Collections whose HNSW index exists (built at first use). */
  const hnswReady = new Set<number>();
  const bitsExpr = (bits: number) => `substring(binary_bits from 1 for ${bits})::bit(${bits})`;
  function ensureHnsw(c: CollectionRow, bits: number): void {
    if (hnswReady.has(c.id)) return;
    // Minutes for millions of documents: the first search waits for it (create it ahead with this statement).
    pg.query(`CREATE INDEX IF NOT EXISTS documents_hnsw_${c.id}_${bits} ON documents USING hnsw ((${bitsExpr(bits)}) bit_hamming_ops) WHERE collection_id = ${c.id}`, [], {
      timeoutMs: 6 * 3600_000,
    });
    hnswReady.add(c.id);
  }
  /** The first stage in PostgreSQL: ORDER BY Hamming distance (exact, or through HNSW). */
  function inDatabase(collectionId: number, query: Uint8Array, k: number, rowids?: readonly number[]) {
    const c = collectionById(collectionId);
    if (!c) throw errors.collectionNotFound(`collection ${collectionId} does not exist`);
    const bits = query.length * 8;
    const filter = rowids ? ' AND rowid = ANY($4::bigint[])' : '';
    const params = [collectionId, bitString(query, bits), k, ...(rowids ? [rowids] : [])];
    let rows: { rowid: number; d: number }[];
    if (firstStage === 'exact') {
      rows = pg.query(`SELECT rowid, substring(binary_bits from 1 for ${bits}) <~> $2::varbit AS d FROM documents WHERE collection_id = $1${filter} ORDER BY d, rowid LIMIT $3`, params);
    } else {
      ensureHnsw(c, bits);
      rows = pg.transaction(() => {
        pg.query(`SET LOCAL hnsw.ef_search = ${Math.max(options.efSearch ?? 100, k)}`);
        pg.query("SET LOCAL hnsw.iterative_scan = 'relaxed_order'");
        return pg.query<{ rowid: number; d: number }>(
          `SELECT rowid, d FROM (SELECT rowid, ${bitsExpr(bits)} <~> $2::bit(${bits}) AS d FROM documents WHERE collection_id = $1${filter}
             ORDER BY ${bitsExpr(bits)} <~> $2::bit(${bits}) LIMIT $3) t ORDER BY d, rowid`,
          params,
        );
      });
    }
    return { rowids: rows.map((r) => r.rowid), distances: rows.map((r) => Number(r.d)), scanned: rowids ? rowids.length : c.document_count };
  }

  /** Documents without staged codes of their current text for `fingerprint`. */
  const countPending = (collectionId: number, fingerprint: string) =>
    pg.query<{ n: number }>(
      `SELECT count(*) AS n FROM documents d
       LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = $1 AND r.text_sha256 = d.text_sha256
       WHERE d.collection_id = $2 AND r.rowid IS NULL`,
      [fingerprint, collectionId],
    )[0]!.n;
  const setMeta = (key: string, value: string): void =>
    void pg.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);

  const bump = (collectionId: number) => pg.query('UPDATE collections SET generation = generation + 1 WHERE id = $1', [collectionId]);

  return {
    // --- Collections ---------------------------------------------------------------------------
    createCollection(name, fingerprint, dimension, codeBits) {
      const bits = codeBits === undefined || codeBits === dimension ? null : codeBits;
      try {
        const c = pg.query<CollectionRow>(
          'INSERT INTO collections (name, fingerprint, dimension, code_bits, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING *',
          [name, fingerprint, dimension, bits, new Date().toISOString()],
        )[0]!;
        if (firstStage === 'memory') indexes.created(c);
        return c;
      } catch (e) {
        if (isUniqueViolation(e)) throw errors.collectionExists(`collection "${name}" already exists`);
        throw e;
      }
    },
    getCollection: (name) => pg.query<CollectionRow>('SELECT * FROM collections WHERE name = $1', [name])[0],
    getCollectionById: collectionById,
    listCollections,
    deleteCollection(id) {
      const deleted = pg.query('DELETE FROM collections WHERE id = $1 RETURNING id', [id]).length === 1;
      indexes.dropped(id);
      return deleted;
    },
    recount: (collectionId) =>
      pg.query<{ documents: number; payloadBytes: number }>(
        'SELECT count(*) AS documents, coalesce(sum(document_bytes(d)), 0)::bigint AS "payloadBytes" FROM documents d WHERE collection_id = $1',
        [collectionId],
      )[0]!,

    // --- Documents -----------------------------------------------------------------------------
    digests(collectionId, docIds) {
      const rows = pg.query<{ doc_id: string; text_sha256: string; metadata: string }>(
        'SELECT doc_id, text_sha256, metadata FROM documents WHERE collection_id = $1 AND doc_id = ANY($2::text[])',
        [collectionId, docIds],
      );
      return new Map(rows.map((r) => [r.doc_id, { textSha256: r.text_sha256, metadata: r.metadata }]));
    },
    writeBatch(collectionId, documents: readonly DocumentWrite[], metadataOnly: readonly MetadataWrite[]) {
      indexes.reserve(collectionId, documents.length);
      let done;
      try {
        done = writing(() => {
          const at = new Date().toISOString();
          for (const m of metadataOnly) {
            const updated = pg.query('UPDATE documents SET metadata = $1, updated_at = $2 WHERE collection_id = $3 AND doc_id = $4 AND text_sha256 = $5 RETURNING rowid', [
              m.metadata,
              at,
              collectionId,
              m.docId,
              m.expectedTextSha256,
            ]);
            if (updated.length !== 1) throw new StaleWriteError(`document "${m.docId}" changed while the batch was being encoded`);
          }
          if (documents.length === 0) return { result: [] as number[], changes: [] };
          const rows = pg.query<{ rowid: number; doc_id: string }>(
            `INSERT INTO documents (collection_id, doc_id, text, metadata, text_sha256, binary_code, int8_code, updated_at)
             SELECT $1::bigint, u.*, $8::text FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[]) AS u
             ON CONFLICT (collection_id, doc_id) DO UPDATE SET text = excluded.text, metadata = excluded.metadata,
               text_sha256 = excluded.text_sha256, binary_code = excluded.binary_code, int8_code = excluded.int8_code,
               updated_at = excluded.updated_at
             RETURNING rowid, doc_id`,
            [
              collectionId,
              documents.map((d) => d.docId),
              documents.map((d) => d.text),
              documents.map((d) => d.metadata),
              documents.map((d) => d.textSha256),
              documents.map((d) => d.binaryCode),
              documents.map((d) => d.int8Code),
              at,
            ],
          );
          const byId = new Map(rows.map((r) => [r.doc_id, r.rowid]));
          const rowids = documents.map((d) => byId.get(d.docId)!);
          if (rowids.some((r) => r > MAX_ROWID)) throw errors.internal(`the database has used up its ${MAX_ROWID} document rowids`);
          bump(collectionId);
          return { result: rowids, changes: rowids.map((rowid) => ({ collection_id: collectionId, rowid, deleted: false })) };
        });
      } catch (e) {
        if (isForeignKeyViolation(e)) throw errors.collectionNotFound('the collection was deleted while the batch was being encoded');
        throw e;
      }
      caughtUp(done.before, done.own);
      indexes.written(
        collectionId,
        done.result.map((rowid, i) => ({ rowid, code: documents[i]!.binaryCode })),
      );
      return done.result;
    },
    getDocument(collectionId, docId) {
      const row = pg.query<DocRow>(`SELECT ${DOC_COLUMNS} FROM documents WHERE collection_id = $1 AND doc_id = $2`, [collectionId, docId])[0];
      return row && toDocument(row);
    },
    deleteDocuments(collectionId, docIds) {
      const done = writing(() => {
        const rows = pg.query<{ rowid: number; doc_id: string }>('DELETE FROM documents WHERE collection_id = $1 AND doc_id = ANY($2::text[]) RETURNING rowid, doc_id', [
          collectionId,
          docIds,
        ]);
        const byId = new Map(rows.map((r) => [r.doc_id, r.rowid]));
        const deleted = docIds.filter((id) => byId.has(id));
        const rowids = deleted.map((id) => byId.get(id)!);
        if (rowids.length > 0) bump(collectionId);
        return { result: { rowids, deleted }, changes: rowids.map((rowid) => ({ collection_id: collectionId, rowid, deleted: true })) };
      });
      caughtUp(done.before, done.own);
      indexes.removed(collectionId, done.result.rowids);
      return done.result;
    },
    filterRowids(collectionId, filter: MetadataFilter) {
      const keys = Object.keys(filter).sort();
      if (keys.length === 0) return pg.query<{ rowid: number }>('SELECT rowid FROM documents WHERE collection_id = $1 ORDER BY rowid', [collectionId]).map((r) => r.rowid);
      // Containment finds the candidates through the GIN index; equality of each key's value
      // keeps JSON's types as SQLite's filter does (an array holding the value is not the value).
      const exact = keys.map((_, i) => `metadata_json -> $${3 + 2 * i} = $${4 + 2 * i}::jsonb`).join(' AND ');
      return pg
        .query<{ rowid: number }>(`SELECT rowid FROM documents WHERE collection_id = $1 AND metadata_json @> $2::jsonb AND ${exact} ORDER BY rowid`, [
          collectionId,
          JSON.stringify(filter),
          ...keys.flatMap((k) => [k, JSON.stringify(filter[k])]),
        ])
        .map((r) => r.rowid);
    },
    int8Codes(rowids) {
      const rows = pg.query<{ rowid: number; int8_code: Uint8Array }>('SELECT rowid, int8_code FROM documents WHERE rowid = ANY($1::bigint[])', [rowids]);
      const map = new Map(rows.map((r) => [r.rowid, buffer(r.int8_code)]));
      return rowids.map((r) => map.get(r));
    },
    documentsByRowid(rowids) {
      const rows = pg.query<DocRow>(`SELECT ${DOC_COLUMNS} FROM documents WHERE rowid = ANY($1::bigint[])`, [rowids]);
      const map = new Map(rows.map((r) => [r.rowid, toDocument(r)]));
      return rowids.map((r) => map.get(r));
    },
    countVectorDocuments: (collectionId) =>
      pg.query<{ n: number }>("SELECT count(*) AS n FROM documents WHERE collection_id = $1 AND text_sha256 LIKE 'vector:%'", [collectionId])[0]!.n,
    iterateBinaryCodes: binaryCodes,
    *iterateDocuments(collectionId) {
      for (const r of paged<DocRow & { binary_code: Uint8Array; int8_code: Uint8Array }>(
        (w) => `SELECT ${DOC_COLUMNS}, binary_code, int8_code FROM documents WHERE collection_id = $1 AND ${w}`,
        [collectionId],
      )) {
        yield { ...toDocument(r), binaryCode: buffer(r.binary_code), int8Code: buffer(r.int8_code) };
      }
    },

    // --- Re-encode staging ---------------------------------------------------------------------
    beginStaging(collectionId, fingerprint, dimension) {
      pg.transaction(() => {
        pg.query('UPDATE collections SET reencode_target = $1 WHERE id = $2', [fingerprint, collectionId]);
        pg.query('DELETE FROM reencode_codes WHERE collection_id = $1 AND fingerprint <> $2', [collectionId, fingerprint]);
      });
      indexes.beginStaging(collectionId, fingerprint, dimension);
    },
    pendingReencode: (collectionId, fingerprint, limit, afterRowid = 0) =>
      pg.query<{ rowid: number; text: string; textSha256: string }>(
        `SELECT d.rowid AS rowid, d.text AS text, d.text_sha256 AS "textSha256" FROM documents d
         LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = $1 AND r.text_sha256 = d.text_sha256
         WHERE d.collection_id = $2 AND d.rowid > $3 AND r.rowid IS NULL ORDER BY d.rowid LIMIT $4`,
        [fingerprint, collectionId, afterRowid, limit],
      ),
    countPendingReencode: countPending,
    stageCodes(collectionId, fingerprint, rows: readonly StagedCodes[]) {
      indexes.reserveStaged(collectionId, rows.length);
      const staged = pg.query<{ rowid: number }>(
        `INSERT INTO reencode_codes (rowid, collection_id, fingerprint, text_sha256, binary_code, int8_code)
         SELECT s.rowid, $1, $2, s.text_sha256, s.binary_code, s.int8_code
         FROM unnest($3::bigint[], $4::text[], $5::bytea[], $6::bytea[]) AS s(rowid, text_sha256, binary_code, int8_code)
         WHERE EXISTS (SELECT 1 FROM documents d WHERE d.rowid = s.rowid AND d.collection_id = $1)
         ON CONFLICT (rowid) DO UPDATE SET fingerprint = excluded.fingerprint, text_sha256 = excluded.text_sha256,
           binary_code = excluded.binary_code, int8_code = excluded.int8_code
         RETURNING rowid`,
        [collectionId, fingerprint, rows.map((r) => r.rowid), rows.map((r) => r.textSha256), rows.map((r) => r.binaryCode), rows.map((r) => r.int8Code)],
      );
      const done = new Set(staged.map((r) => r.rowid));
      const kept = rows.filter((r) => done.has(r.rowid));
      indexes.staged(
        collectionId,
        kept.map((r) => ({ rowid: r.rowid, code: r.binaryCode })),
      );
      return kept.map((r) => r.rowid);
    },
    finishReencode(collectionId, fingerprint, dimension) {
      const done = writing(() => {
        const pending = countPending(collectionId, fingerprint);
        if (pending !== 0) throw new Error(`${pending} documents have no staged codes yet`);
        pg.query(
          `UPDATE documents SET binary_code = r.binary_code, int8_code = r.int8_code
           FROM reencode_codes r WHERE r.rowid = documents.rowid AND r.collection_id = $1 AND r.fingerprint = $2`,
          [collectionId, fingerprint],
        );
        pg.query('UPDATE collections SET fingerprint = $1, dimension = $2, reencode_target = NULL, generation = generation + 1 WHERE id = $3', [fingerprint, dimension, collectionId]);
        pg.query('DELETE FROM reencode_codes WHERE collection_id = $1', [collectionId]);
        return { result: undefined, changes: [{ collection_id: collectionId, rowid: 0, deleted: false }] };
      });
      caughtUp(done.before, done.own);
      indexes.swapStaged(collectionId);
    },

    // A session-level advisory lock: released by the process, or by PostgreSQL when its
    // connection ends (a process that died), so that another process can take over.
    claimReencode: (collectionId) => pg.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2::int) AS ok', [REENCODE_LOCK, collectionId])[0]!.ok,
    releaseReencode(collectionId) {
      try {
        pg.query('SELECT pg_advisory_unlock($1, $2::int)', [REENCODE_LOCK, collectionId]);
      } catch {
        // the connection is gone, and its locks with it
      }
    },

    // --- Meta ----------------------------------------------------------------------------------
    getMeta: (key) => pg.query<{ value: string }>('SELECT value FROM meta WHERE key = $1', [key])[0]?.value,
    setMeta,

    // --- First stage ---------------------------------------------------------------------------
    loadIndexes() {
      if (firstStage !== 'memory') return listCollections().reduce((n, c) => n + c.document_count, 0);
      sync();
      return indexes.loadIndexes();
    },
    nearest(collectionId, query, k, rowids, planes) {
      if (firstStage === 'memory' || planes) {
        sync();
        // A filter's rowids were read before this sync: another process may have deleted some since.
        return indexes.nearest(collectionId, query, k, rowids && indexes.present(collectionId, rowids), planes);
      }
      return inDatabase(collectionId, query, k, rowids);
    },
    indexStats: (collectionId) => indexes.indexStats(collectionId),
    indexEntries(collectionId) {
      sync();
      return indexes.indexEntries(collectionId);
    },
    // Each process loads its indexes from the database (no snapshots here).
    persistFirstStage: () => undefined,

    // --- Storage -------------------------------------------------------------------------------
    databaseBytes: () => pg.query<{ bytes: number }>('SELECT pg_database_size(current_database()) AS bytes')[0]!.bytes,
    ensureRoom: () => undefined,
    probeWritable: () => setMeta('health_probe', new Date().toISOString()),
    storageStatus: () => ({ full: false, since: null, message: null }),
    close: () => pg.close(),
  };
}
