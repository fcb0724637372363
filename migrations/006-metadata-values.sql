-- Metadata filters read the matching documents from an index instead of evaluating the JSON of
-- every document of the collection: one row per (document, top-level key with a scalar value),
-- kept by triggers in the same transaction as the documents. Rows of one (key, value) are
-- adjacent and in rowid order, which is the order the first stage wants them in.
--   kind:  'text' | 'number' (JSON integers and reals compare as numbers) | 'boolean' | 'null'
--   value: the text or number; 1/0 for true/false; 0 for null (primary key columns are NOT NULL)
-- The column `value` has no declared type, so SQLite keeps each value's own type: the text "1"
-- stays text and never equals the number 1. Arrays and objects are not indexed (filters match
-- scalars only).
CREATE TABLE metadata_values (
  collection_id INTEGER NOT NULL,
  key           TEXT NOT NULL,
  kind          TEXT NOT NULL,
  value         NOT NULL,
  doc           INTEGER NOT NULL,
  PRIMARY KEY (collection_id, key, kind, value, doc)
) WITHOUT ROWID;

-- The rows of one document's metadata (a table-valued view of json_each).
CREATE VIEW document_metadata_values AS
  SELECT d.collection_id, j.key,
         CASE j.type WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE j.type END AS kind,
         CASE j.type WHEN 'null' THEN 0 ELSE j.atom END AS value,
         d.rowid AS doc
  FROM documents d, json_each(d.metadata) j
  WHERE j.type NOT IN ('array', 'object');

INSERT INTO metadata_values SELECT * FROM document_metadata_values;

-- The triggers go through the view, looking the document up by rowid: BEFORE a delete or a
-- change of metadata (the row still holds the old metadata) its rows go, each by its whole key;
-- AFTER an insert or a change the new ones come in.
CREATE TRIGGER metadata_values_insert AFTER INSERT ON documents WHEN NEW.metadata <> '{}' BEGIN
  INSERT INTO metadata_values SELECT * FROM document_metadata_values WHERE doc = NEW.rowid;
END;

CREATE TRIGGER metadata_values_delete BEFORE DELETE ON documents WHEN OLD.metadata <> '{}' BEGIN
  DELETE FROM metadata_values
  WHERE (collection_id, key, kind, value, doc) IN (SELECT * FROM document_metadata_values WHERE doc = OLD.rowid);
END;

CREATE TRIGGER metadata_values_update_old BEFORE UPDATE OF metadata ON documents WHEN NEW.metadata IS NOT OLD.metadata AND OLD.metadata <> '{}' BEGIN
  DELETE FROM metadata_values
  WHERE (collection_id, key, kind, value, doc) IN (SELECT * FROM document_metadata_values WHERE doc = OLD.rowid);
END;

CREATE TRIGGER metadata_values_update_new AFTER UPDATE OF metadata ON documents WHEN NEW.metadata IS NOT OLD.metadata AND NEW.metadata <> '{}' BEGIN
  INSERT INTO metadata_values SELECT * FROM document_metadata_values WHERE doc = NEW.rowid;
END;
