-- Re-encoding a collection for another model (after POST /models/{fingerprint}/activate):
-- the new codes are staged here while searches keep using the documents' current codes, then
-- swapped in by one transaction. A staged row belongs to the document with the same rowid
-- (deleted with it) and records the text hash it was computed from, so a document whose text
-- changed meanwhile is staged again before the swap.
CREATE TABLE reencode_codes (
  rowid         INTEGER PRIMARY KEY REFERENCES documents(rowid) ON DELETE CASCADE,
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  fingerprint   TEXT NOT NULL,
  text_sha256   TEXT NOT NULL,
  binary_code   BLOB NOT NULL,
  int8_code     BLOB NOT NULL
);
CREATE INDEX reencode_codes_by_collection ON reencode_codes (collection_id, fingerprint);

-- The fingerprint a collection is being re-encoded to (NULL when none), so a restart resumes it.
ALTER TABLE collections ADD COLUMN reencode_target TEXT;
