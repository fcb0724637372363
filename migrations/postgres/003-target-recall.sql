-- The recall@10 a collection's `rescore_multiplier: "auto"` searches aim for (src/quality/):
-- NULL is the service's default (0.99). A setting of the collection, not of its codes.
ALTER TABLE collections ADD COLUMN target_recall DOUBLE PRECISION CHECK (target_recall IS NULL OR (target_recall > 0 AND target_recall <= 1));
