-- Training jobs: created by the API (POST /train-jobs), claimed and run by a worker process.
-- A running job carries a lease (unix ms) that its worker renews with every progress write; a
-- job whose lease ran out is failed by the API, so a dead worker never leaves it "running".
CREATE TABLE train_jobs (
  id               TEXT PRIMARY KEY,
  state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
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
  result           TEXT CHECK (result IS NULL OR json_valid(result))
);
CREATE INDEX train_jobs_by_state ON train_jobs (state, created_at);
