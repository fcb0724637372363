/**
 * Sharding on PostgreSQL's own partitioning (src/store/postgres/sharding.ts): a coordinator
 * whose documents table is hash-partitioned by rowid over 2 shard servers through
 * postgres_fdw returns, for first-stage queries in SQL (Hamming order, with and without a
 * metadata filter) and for a document listing's pages, exactly what one instance holding all
 * the documents returns; each shard selects its part of the collection.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinatorSql, shardSql } from '../../src/store/postgres/sharding.js';
import { postgresBin, postgresNotice, type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { xorshift32 } from '../helpers/random.js';

postgresNotice('the sharding test (test/postgres/sharding.test.ts)');

const servers: PostgresServer[] = [];
const clients: pg.Client[] = [];
async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}
beforeAll(async () => {
  if (postgresBin) servers.push(...(await Promise.all([startPostgres(), startPostgres(), startPostgres(), startPostgres()])));
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  for (const s of servers) s.destroy();
});

const next = xorshift32(23);
const BYTES = 48;
const hex = () => Buffer.from(Uint8Array.from({ length: BYTES }, () => next() & 255)).toString('hex');

describe.runIf(postgresBin)('documents hash-partitioned over 2 shard servers', () => {
  it('answer first-stage queries exactly as one instance, each shard selecting its part', async () => {
    const [single, coordinatorServer, ...shardServers] = servers;
    const one = await connect(single!.url);
    for (const q of shardSql()) await one.query(q);
    await one.query('ALTER TABLE documents_part RENAME TO documents');
    for (const s of shardServers) {
      const shard = await connect(s.url);
      for (const q of shardSql()) await shard.query(q);
    }
    const coordinator = await connect(coordinatorServer!.url);
    for (const q of coordinatorSql(shardServers.map((s) => ({ host: '127.0.0.1', port: s.port, dbname: 'postgres', user: 'postgres' })))) await coordinator.query(q);

    // The same documents into both: 3 collections, rowids interleaved between them.
    const rows = Array.from({ length: 3000 }, (_, i) => ({ rowid: i + 1, collection: 1 + (i % 3), code: hex(), lang: ['en', 'fr', 'de'][next() % 3]! }));
    const insert = `INSERT INTO documents (rowid, collection_id, doc_id, text, metadata, metadata_json, text_sha256, binary_code, int8_code, updated_at, binary_bits)
      SELECT r, c, 'd' || r, 'text ' || r, m, m::jsonb, 'h', decode(code, 'hex'), '\\x00'::bytea, 'now', ('x' || code)::varbit
      FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS t(r, c, code, m)`;
    const params = [rows.map((r) => r.rowid), rows.map((r) => r.collection), rows.map((r) => r.code), rows.map((r) => JSON.stringify({ lang: r.lang }))];
    await one.query(insert, params);
    await coordinator.query(insert, params);
    // Both shards hold part of every collection.
    for (const s of clients.slice(1, 3)) {
      const counts = (await s.query('SELECT collection_id, count(*)::int AS n FROM documents_part GROUP BY collection_id ORDER BY 1')).rows as { n: number }[];
      expect(counts).toHaveLength(3);
      for (const c of counts) expect(c.n).toBeGreaterThan(300);
    }

    const query = `SELECT rowid, binary_bits <~> $2::varbit AS d FROM documents WHERE collection_id = $1 ORDER BY d, rowid LIMIT 40`;
    const filtered = `SELECT rowid, binary_bits <~> $2::varbit AS d FROM documents WHERE collection_id = $1 AND metadata_json @> $3::jsonb ORDER BY d, rowid LIMIT 40`;
    for (let i = 0; i < 30; i++) {
      const q = [1 + (i % 3), BigInt(`0x${hex()}`).toString(2).padStart(BYTES * 8, '0')];
      expect((await coordinator.query(query, q)).rows).toEqual((await one.query(query, q)).rows);
      const f = [...q, JSON.stringify({ lang: 'fr' })];
      expect((await coordinator.query(filtered, f)).rows).toEqual((await one.query(filtered, f)).rows);
    }
    // A document listing's page (documents.ts: listDocuments), keyset on rowid, with and without
    // a filter: the same pages. With sorts off (as listDocuments sets them without a filter)
    // every shard walks its part in rowid order from the cursor and the coordinator merges them,
    // stopping at the page's end, instead of sorting every document after the cursor.
    const listing = `SELECT rowid, doc_id, text, metadata FROM documents WHERE collection_id = $1 AND rowid > $2 AND metadata_json @> $4::jsonb ORDER BY rowid LIMIT $3`;
    await coordinator.query('BEGIN');
    await coordinator.query('SET LOCAL enable_sort = off');
    for (const filter of [{}, { lang: 'de' }]) {
      let after = 0;
      for (let pages = 0; ; pages++) {
        const p = [2, after, 150, JSON.stringify(filter)];
        const rows = (await coordinator.query(listing, p)).rows as { rowid: number }[];
        expect(rows).toEqual((await one.query(listing, p)).rows);
        if (rows.length === 0) {
          expect(pages).toBeGreaterThan(filter.lang ? 1 : 5);
          break;
        }
        after = Number(rows.at(-1)!.rowid);
      }
    }
    const listingPlan = (await coordinator.query(`EXPLAIN (VERBOSE, COSTS OFF) ${listing}`, [2, 100, 20, '{}'])).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
    await coordinator.query('COMMIT');
    expect(listingPlan.match(/Remote SQL: SELECT rowid, doc_id, text, metadata FROM public\.documents_part WHERE \(\(rowid > 100::bigint\)\).* AND \(\(collection_id = 2::bigint\)\) ORDER BY rowid ASC/g)).toHaveLength(2);
    expect(listingPlan).toMatch(/^Limit\n.*\n {2}->  Merge Append\n/);
    // What runs where (PostgreSQL 18.6, pgvector 0.8.6): every shard selects its part of the
    // collection (the WHERE is pushed down, and pgvector's functions are shippable there), but
    // the ORDER BY <~> is not: the coordinator sorts what the shards send (docs/scale-out.md).
    const plan = (await coordinator.query(`EXPLAIN (VERBOSE, COSTS OFF) ${query}`, [1, '0'.repeat(BYTES * 8)])).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
    expect(plan.match(/Remote SQL: SELECT rowid, binary_bits FROM public\.documents_part WHERE \(\(collection_id = 1::bigint\)\)/g)).toHaveLength(2);
    expect(plan).toMatch(/Sort Key: .*<~>/);
  });
});
