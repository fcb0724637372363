-- A collection's write generation: bumped by every transaction that changes its documents'
-- codes (writes, deletes, the swap that ends a re-encoding). A snapshot of its in-memory index
-- records the generation it was taken at, and is used at start only while they are equal
-- (src/store/memory-index/snapshot.ts).
ALTER TABLE collections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
