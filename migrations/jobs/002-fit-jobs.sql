-- Transform fits: a collection's first-stage code transform fitted by the worker on a sample of
-- its int8 codes (the service writes the sample under fit-jobs/<id>/ before queueing the job).
-- The same lease, progress and cancel columns and states as train_jobs. `imported_at` is set by
-- the one service process that takes the result (a conditional UPDATE ... WHERE imported_at IS
-- NULL), so replicas sharing this file never import a fit twice.
CREATE TABLE fit_jobs (
  id               TEXT PRIMARY KEY,
  state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  collection       TEXT NOT NULL,
  spec             TEXT NOT NULL CHECK (json_valid(spec)),
  created_at       TEXT NOT NULL,
  started_at       TEXT,
  finished_at      TEXT,
  worker           TEXT,
  lease_expires_at INTEGER,
  progress         REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
  step             INTEGER,
  total_steps      INTEGER,
  loss             REAL,
  message          TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  result           TEXT CHECK (result IS NULL OR json_valid(result)),
  imported_at      TEXT
);
CREATE INDEX fit_jobs_by_state ON fit_jobs (state, created_at);
CREATE INDEX fit_jobs_by_collection ON fit_jobs (collection, created_at);
