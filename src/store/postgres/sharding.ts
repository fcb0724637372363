/**
 * Sharding on PostgreSQL's own partitioning (docs/scale-out.md): on a coordinator, the
 * documents table is hash-partitioned by rowid, each partition a postgres_fdw foreign table on
 * a shard server, so that one collection spreads over every shard. A first stage in SQL
 * (`ORDER BY binary_bits <~> q LIMIT k`) runs on all of them, but only its WHERE is pushed down:
 * with PostgreSQL 18.6 and pgvector 0.8.6 (declared a shippable extension), postgres_fdw does not
 * push the ORDER BY on `<~>` (nor LIMIT through partitions), so the coordinator sorts the
 * codes the shards send. test/postgres/sharding.test.ts checks the results and that plan.
 *
 * These functions write the SQL; an operator (or the test) runs it. Adding a shard means a
 * new modulus: create the new layout and move the rows (INSERT ... SELECT), as with any hash
 * partitioning.
 */

export interface Shard {
  host: string;
  port: number;
  dbname: string;
  user: string;
}

/** The documents columns, as the store's schema has them (binary_bits stored, not generated, on shards). */
const COLUMNS = `
  rowid         BIGINT NOT NULL,
  collection_id BIGINT NOT NULL,
  doc_id        TEXT NOT NULL,
  text          TEXT NOT NULL,
  metadata      TEXT NOT NULL,
  metadata_json JSONB NOT NULL,
  text_sha256   TEXT NOT NULL,
  binary_code   BYTEA NOT NULL,
  int8_code     BYTEA NOT NULL,
  updated_at    TEXT NOT NULL,
  binary_bits   VARBIT NOT NULL`;

/** On each shard: the table holding its part of the documents. */
export function shardSql(): string[] {
  return [
    'CREATE EXTENSION IF NOT EXISTS vector',
    `CREATE TABLE documents_part (${COLUMNS},
       PRIMARY KEY (rowid))`,
    'CREATE INDEX documents_part_by_collection ON documents_part (collection_id, rowid)',
    'CREATE INDEX documents_part_metadata ON documents_part USING gin (metadata_json jsonb_path_ops)',
  ];
}

/** On the coordinator: the partitioned documents table over the shards (`shards.length` hash partitions by rowid). */
export function coordinatorSql(shards: readonly Shard[]): string[] {
  const sql = ['CREATE EXTENSION IF NOT EXISTS vector', 'CREATE EXTENSION IF NOT EXISTS postgres_fdw', `CREATE TABLE documents (${COLUMNS}) PARTITION BY HASH (rowid)`];
  shards.forEach((s, i) => {
    const quote = (v: string | number) => `'${String(v).replace(/'/g, "''")}'`;
    sql.push(
      // extensions 'vector': pgvector's operators may be shipped to the shard (ORDER BY <~> pushed down).
      `CREATE SERVER shard_${i} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host ${quote(s.host)}, port ${quote(s.port)}, dbname ${quote(s.dbname)}, extensions 'vector', fetch_size '1000', use_remote_estimate 'true')`,
      `CREATE USER MAPPING FOR CURRENT_USER SERVER shard_${i} OPTIONS (user ${quote(s.user)})`,
      `CREATE FOREIGN TABLE documents_${i} PARTITION OF documents FOR VALUES WITH (MODULUS ${shards.length}, REMAINDER ${i}) SERVER shard_${i} OPTIONS (table_name 'documents_part')`,
    );
  });
  return sql;
}
