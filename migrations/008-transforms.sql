-- First-stage code transforms (src/transform/, issue 24): a collection's first stage may scan the
-- signs of a transform of its documents' vectors instead of the signs of their first dimensions.
-- A transform fitted for a collection is kept here with it (its artifact's arrays as little-endian
-- float32 bytes: mean[d], matrix[bits x d] row-major) and a JSON summary (how it was fitted, the
-- recall measured for it against the codes it would replace, whether it was switched to).
CREATE TABLE transforms (
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  fingerprint   TEXT NOT NULL,
  method        TEXT NOT NULL,
  bits          INTEGER NOT NULL CHECK (bits > 0 AND bits % 8 = 0),
  dimension     INTEGER NOT NULL,
  mean          BLOB NOT NULL,
  matrix        BLOB NOT NULL,
  summary       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(summary)),
  created_at    TEXT NOT NULL,
  PRIMARY KEY (collection_id, fingerprint)
);

-- The transform a collection's first stage is served with (NULL: first dims), and the one whose
-- codes are being staged (so that a restart resumes it).
ALTER TABLE collections ADD COLUMN transform TEXT;
ALTER TABLE collections ADD COLUMN transform_target TEXT;

-- A document's first-stage code when its collection is served with a transform (bits / 8 bytes);
-- NULL under first dims, whose codes are the prefix of binary_code. binary_code itself stays the
-- model's full-length sign code, so reverting to first dims needs no computation.
ALTER TABLE documents ADD COLUMN first_code BLOB;

-- First-stage codes of a transform staged beside the served ones while a collection switches to
-- it (computed from the stored int8 codes, without the model), keyed like reencode_codes by rowid
-- and the text hash they were made from: a document rewritten meanwhile is staged again.
CREATE TABLE transform_codes (
  rowid         INTEGER PRIMARY KEY REFERENCES documents(rowid) ON DELETE CASCADE,
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  transform     TEXT NOT NULL,
  text_sha256   TEXT NOT NULL,
  code          BLOB NOT NULL
);
CREATE INDEX transform_codes_by_collection ON transform_codes (collection_id, transform);
