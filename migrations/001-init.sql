-- Collections are bound to the fingerprint of the model bundle whose codes they store.
CREATE TABLE collections (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  fingerprint TEXT NOT NULL,
  dimension   INTEGER NOT NULL CHECK (dimension > 0 AND dimension % 8 = 0),
  created_at  TEXT NOT NULL
);

-- One row per document: text, metadata and the two codes search needs (binary for the
-- first stage, int8 for rescoring). Float32 vectors are never stored. AUTOINCREMENT keeps
-- rowids increasing, which the in-memory index relies on to stay sorted by rowid.
CREATE TABLE documents (
  rowid         INTEGER PRIMARY KEY AUTOINCREMENT,
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  doc_id        TEXT NOT NULL,
  text          TEXT NOT NULL,
  metadata      TEXT CHECK (metadata IS NULL OR json_type(metadata) = 'object'),
  text_sha256   TEXT NOT NULL,
  binary_code   BLOB NOT NULL,
  int8_code     BLOB NOT NULL,
  updated_at    TEXT NOT NULL,
  UNIQUE (collection_id, doc_id)
);

-- Small key/value state (health probe writes, active model, ...).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
