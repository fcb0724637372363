-- First-stage code transforms, as SQLite's migrations/008-transforms.sql (see there).
CREATE TABLE transforms (
  collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  fingerprint   TEXT NOT NULL,
  method        TEXT NOT NULL,
  bits          INTEGER NOT NULL CHECK (bits > 0 AND bits % 8 = 0),
  dimension     INTEGER NOT NULL,
  mean          BYTEA NOT NULL,
  matrix        BYTEA NOT NULL,
  summary       TEXT NOT NULL DEFAULT '{}',
  created_at    TEXT NOT NULL,
  PRIMARY KEY (collection_id, fingerprint)
);
ALTER TABLE collections ADD COLUMN transform TEXT;
ALTER TABLE collections ADD COLUMN transform_target TEXT;
ALTER TABLE documents ADD COLUMN first_code BYTEA;
-- The bit strings the SQL first stage scans are the first-stage codes: a transform's when the
-- collection has one, else the model's sign code (whose prefix is the first dims' code).
ALTER TABLE documents ALTER COLUMN binary_bits SET EXPRESSION AS (('x' || encode(coalesce(first_code, binary_code), 'hex'))::varbit);
CREATE TABLE transform_codes (
  rowid         BIGINT PRIMARY KEY REFERENCES documents(rowid) ON DELETE CASCADE,
  collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  transform     TEXT NOT NULL,
  text_sha256   TEXT NOT NULL,
  code          BYTEA NOT NULL
);
CREATE INDEX transform_codes_by_collection ON transform_codes (collection_id, transform);
