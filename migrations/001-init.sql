-- Collections are bound to the fingerprint of the model bundle whose codes they store.
-- AUTOINCREMENT: a deleted collection's id is never reused, so a write that was planned
-- against a collection cannot land in a new one re-created under the same name.
-- document_count and payload_bytes are kept by the triggers below, in the same transaction
-- as the writes, so GET /collections/{name} does not scan the documents.
CREATE TABLE collections (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  name           TEXT NOT NULL UNIQUE,
  fingerprint    TEXT NOT NULL,
  dimension      INTEGER NOT NULL CHECK (dimension > 0 AND dimension % 8 = 0),
  created_at     TEXT NOT NULL,
  document_count INTEGER NOT NULL DEFAULT 0,
  payload_bytes  INTEGER NOT NULL DEFAULT 0
);

-- One row per document: text, metadata and the two codes search needs (binary for the
-- first stage, int8 for rescoring). Float32 vectors are never stored. AUTOINCREMENT keeps
-- rowids increasing and never reused, which the in-memory index relies on: new rows append
-- at its end, and an upsert of an existing id updates the row in place (same rowid, same slot).
CREATE TABLE documents (
  rowid         INTEGER PRIMARY KEY AUTOINCREMENT,
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  doc_id        TEXT NOT NULL CHECK (length(doc_id) BETWEEN 1 AND 256),
  text          TEXT NOT NULL,
  metadata      TEXT NOT NULL DEFAULT '{}' CHECK (json_type(metadata) = 'object'),
  text_sha256   TEXT NOT NULL,
  binary_code   BLOB NOT NULL,
  int8_code     BLOB NOT NULL,
  updated_at    TEXT NOT NULL,
  UNIQUE (collection_id, doc_id)
);

-- The bytes a document's stored values take (its share of "bytes on disk"; SQLite's page
-- and index overhead comes on top).
CREATE VIEW document_payload AS
  SELECT rowid, collection_id,
         length(CAST(doc_id AS BLOB)) + length(CAST(text AS BLOB)) + length(CAST(metadata AS BLOB))
           + length(text_sha256) + length(binary_code) + length(int8_code) AS bytes
  FROM documents;

CREATE TRIGGER documents_count_insert AFTER INSERT ON documents BEGIN
  UPDATE collections SET document_count = document_count + 1,
    payload_bytes = payload_bytes + (SELECT bytes FROM document_payload WHERE rowid = NEW.rowid)
  WHERE id = NEW.collection_id;
END;

CREATE TRIGGER documents_count_delete AFTER DELETE ON documents BEGIN
  UPDATE collections SET document_count = document_count - 1,
    payload_bytes = payload_bytes
      - (length(CAST(OLD.doc_id AS BLOB)) + length(CAST(OLD.text AS BLOB)) + length(CAST(OLD.metadata AS BLOB))
         + length(OLD.text_sha256) + length(OLD.binary_code) + length(OLD.int8_code))
  WHERE id = OLD.collection_id;
END;

CREATE TRIGGER documents_count_update AFTER UPDATE ON documents BEGIN
  UPDATE collections SET payload_bytes = payload_bytes
      + (SELECT bytes FROM document_payload WHERE rowid = NEW.rowid)
      - (length(CAST(OLD.doc_id AS BLOB)) + length(CAST(OLD.text AS BLOB)) + length(CAST(OLD.metadata AS BLOB))
         + length(OLD.text_sha256) + length(OLD.binary_code) + length(OLD.int8_code))
  WHERE id = NEW.collection_id;
END;

-- Small key/value state (health probe writes, active model, ...).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
