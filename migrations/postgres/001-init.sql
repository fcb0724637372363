-- The PostgreSQL store (src/store/postgres/): the same tables and meaning as SQLite's
-- migrations/001-006, for several API processes on one database (docs/scale-out.md).
CREATE EXTENSION IF NOT EXISTS vector;

-- Collections are bound to the fingerprint of the model bundle whose codes they store. Ids
-- and document rowids come from identity columns: increasing and never reused.
CREATE TABLE collections (
  id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  fingerprint     TEXT NOT NULL,
  dimension       INTEGER NOT NULL CHECK (dimension > 0 AND dimension % 8 = 0),
  created_at      TEXT NOT NULL,
  document_count  BIGINT NOT NULL DEFAULT 0,
  payload_bytes   BIGINT NOT NULL DEFAULT 0,
  reencode_target TEXT,
  code_bits       INTEGER,
  generation      BIGINT NOT NULL DEFAULT 0
);

-- metadata is kept as the JSON text it was given (as SQLite does), with a jsonb copy that
-- filters read through a GIN index.
CREATE TABLE documents (
  rowid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  doc_id        TEXT NOT NULL CHECK (length(doc_id) BETWEEN 1 AND 256),
  text          TEXT NOT NULL,
  metadata      TEXT NOT NULL DEFAULT '{}',
  metadata_json JSONB GENERATED ALWAYS AS (metadata::jsonb) STORED,
  text_sha256   TEXT NOT NULL,
  binary_code   BYTEA NOT NULL,
  int8_code     BYTEA NOT NULL,
  updated_at    TEXT NOT NULL,
  UNIQUE (collection_id, doc_id)
);
CREATE INDEX documents_by_collection ON documents (collection_id, rowid);
CREATE INDEX documents_metadata ON documents USING gin (metadata_json jsonb_path_ops);

-- A document's payload (the bytes of its stored values), as SQLite's document_payload.
CREATE FUNCTION document_bytes(d documents) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
  SELECT octet_length(d.doc_id) + octet_length(d.text) + octet_length(d.metadata) + octet_length(d.text_sha256)
       + octet_length(d.binary_code) + octet_length(d.int8_code)
$$;

-- The counters, by statement (transition tables), not by row: one UPDATE per batch.
CREATE FUNCTION documents_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE collections c SET document_count = c.document_count + n.count, payload_bytes = c.payload_bytes + n.bytes
  FROM (SELECT collection_id, count(*) AS count, sum(document_bytes(r)) AS bytes FROM new_rows r GROUP BY collection_id) n
  WHERE c.id = n.collection_id;
  RETURN NULL;
END $$;
CREATE FUNCTION documents_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE collections c SET document_count = c.document_count - o.count, payload_bytes = c.payload_bytes - o.bytes
  FROM (SELECT collection_id, count(*) AS count, sum(document_bytes(r)) AS bytes FROM old_rows r GROUP BY collection_id) o
  WHERE c.id = o.collection_id;
  RETURN NULL;
END $$;
CREATE FUNCTION documents_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE collections c SET payload_bytes = c.payload_bytes + d.bytes
  FROM (SELECT collection_id, sum(bytes) AS bytes FROM (
          SELECT collection_id, document_bytes(r) AS bytes FROM new_rows r
          UNION ALL SELECT collection_id, -document_bytes(r) FROM old_rows r) x GROUP BY collection_id) d
  WHERE c.id = d.collection_id;
  RETURN NULL;
END $$;
CREATE TRIGGER documents_count_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_count_insert();
CREATE TRIGGER documents_count_delete AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_count_delete();
CREATE TRIGGER documents_count_update AFTER UPDATE ON documents REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION documents_count_update();

-- Codes of another model staged while a collection is re-encoded (as SQLite's 002).
CREATE TABLE reencode_codes (
  rowid         BIGINT PRIMARY KEY REFERENCES documents(rowid) ON DELETE CASCADE,
  collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  fingerprint   TEXT NOT NULL,
  text_sha256   TEXT NOT NULL,
  binary_code   BYTEA NOT NULL,
  int8_code     BYTEA NOT NULL
);
CREATE INDEX reencode_codes_by_collection ON reencode_codes (collection_id, fingerprint);

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Every change of a document's codes, in commit order (writes take one lock: see
-- postgres-store.ts), so that each API process brings its in-memory first stage up to date
-- before a search: rowid 0 means "the whole collection changed" (a re-encoding's swap).
CREATE TABLE changes (
  seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  collection_id BIGINT NOT NULL,
  rowid         BIGINT NOT NULL,
  deleted       BOOLEAN NOT NULL
);
