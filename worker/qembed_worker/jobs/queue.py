"""The worker's job loop: claim the jobs the API queued, run them, report.

The queue is ``<data-dir>/jobs.sqlite``, created by the API (migrations/jobs/), with two tables
of the same shape: ``train_jobs`` (POST /train-jobs, run by :mod:`qembed_worker.qat.job`) and
``fit_jobs`` (a collection's code transform, run by :mod:`qembed_worker.transform.job`). A job
is claimed by one conditional UPDATE inside an immediate transaction, so two workers never run
the same job. While it runs, the worker renews the job's lease and writes its progress (step,
loss) back into the row; a worker that dies stops renewing, and the API fails the job when the
lease runs out. Cancellation is noticed at the next progress report or heartbeat. A claimed
spec is checked against its contract (``contracts/train-job-spec.schema.json``,
``contracts/fit-job-spec.schema.json``), the schema the API validates the specs it queues
against: one that breaks it fails with the schema's message, and nothing runs.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qembed_worker.contracts import FIT_JOB_SPEC, TRAIN_JOB_SPEC, ContractError, validate

TRAIN = "train_jobs"
FIT = "fit_jobs"
# Which tables a worker claims from, in order: a fit takes minutes and a training job may take
# hours, so a queued fit goes first rather than waiting behind a training job queued before it
# (within a table, the oldest job first).
TABLES = (FIT, TRAIN)
CONTRACTS = {TRAIN: TRAIN_JOB_SPEC, FIT: FIT_JOB_SPEC}

CLAIM_SQL = """
UPDATE {table} SET state = 'running', worker = ?, started_at = ?, lease_expires_at = ?,
  message = 'claimed by ' || ?
WHERE id = (SELECT id FROM {table} WHERE state = 'queued' ORDER BY created_at LIMIT 1)
  AND state = 'queued'
RETURNING id, spec
"""

REAP_SQL = """
UPDATE {table} SET state = 'failed', finished_at = ?,
  message = 'the worker stopped reporting: lease expired at ' || ? ||
    ' (it probably died); submit the job again'
WHERE state = 'running' AND lease_expires_at < ?
"""


class JobCancelledError(Exception):
    """Raised inside a running job when the API asked to cancel it."""


class JobError(Exception):
    """A job that cannot run, for a reason its message says in full (no traceback is kept)."""


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds, as the API writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """The current time in unix milliseconds (lease times)."""
    return int(time.time() * 1000)


def connect(data_dir: Path, wait_seconds: float = 60.0) -> sqlite3.Connection:
    """Opens the job queue, waiting for the API to create it (it applies the schema).

    Raises:
        RuntimeError: The queue did not appear in time.
    """
    path = data_dir / "jobs.sqlite"
    deadline = time.monotonic() + wait_seconds
    while True:
        if path.exists():
            # The heartbeat thread writes through this connection too (JobQueue's lock keeps
            # one statement at a time); sqlite3 would refuse that by default, and the
            # refusal, an sqlite3.Error, was swallowed as a busy database: no lease renewed.
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 30000")
            tables = {
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if tables.issuperset(TABLES):
                db.execute("PRAGMA journal_mode = WAL")
                return db
            db.close()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{path} lacks the tables {', '.join(TABLES)}: start the API first (it creates "
                "the job queue), of the same qembed version as this worker"
            )
        time.sleep(1.0)


@dataclass
class Job:
    """A claimed job: its table, its id and the spec the API stored (defaults filled in)."""

    table: str
    id: str
    spec: dict[str, Any]


class JobQueue:
    """The worker's side of the queue: claim, heartbeat, progress, finish."""

    def __init__(self, db: sqlite3.Connection, worker_id: str, lease_seconds: float) -> None:
        """Wraps an open queue connection for one worker identity."""
        self.db = db
        self.worker_id = worker_id
        self.lease_ms = int(lease_seconds * 1000)
        self._lock = threading.Lock()

    def _exec(self, sql: str, *params: Any) -> sqlite3.Cursor:
        with self._lock:
            return self.db.execute(sql, params)

    def reap(self) -> int:
        """Fails running jobs whose lease ran out (their worker died); returns how many."""
        at = now_iso()
        return sum(
            self._exec(REAP_SQL.format(table=table), at, at, now_ms()).rowcount for table in TABLES
        )

    def claim(self) -> Job | None:
        """Takes the oldest queued fit, else the oldest queued training job, or None."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for table in TABLES:
                    row = self.db.execute(
                        CLAIM_SQL.format(table=table),
                        (self.worker_id, now_iso(), now_ms() + self.lease_ms, self.worker_id),
                    ).fetchone()
                    if row is not None:
                        break
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        if row is None:
            return None
        return Job(table=table, id=row["id"], spec=json.loads(row["spec"]))

    def _renew(self, job: Job, assignments: str = "", *values: object) -> bool:
        """Renews the lease, writing ``assignments`` too; returns whether cancellation was asked."""
        row = self._exec(
            f"UPDATE {job.table} SET {assignments}lease_expires_at = ? WHERE id = ? AND worker = ? "
            "AND state = 'running' RETURNING cancel_requested",
            *values,
            now_ms() + self.lease_ms,
            job.id,
            self.worker_id,
        ).fetchone()
        return bool(row is None or row["cancel_requested"])

    def heartbeat(self, job: Job) -> bool:
        """Renews the lease; returns whether the API asked to cancel the job."""
        return self._renew(job)

    def note(self, job: Job, message: str) -> bool:
        """Writes the job's message (a stage without steps); returns whether cancel was asked."""
        return self._renew(job, "message = ?, ", message)

    def progress(self, job: Job, step: int, total: int, loss: float | None, message: str) -> bool:
        """Writes progress (and renews the lease); returns whether cancellation was asked."""
        return self._renew(
            job,
            "step = ?, total_steps = ?, progress = ?, loss = ?, message = ?, ",
            step,
            total,
            min(1.0, max(0.0, step / total)) if total else 0.0,
            loss,
            message,
        )

    def finish(
        self, job: Job, state: str, message: str, result: dict[str, Any] | None = None
    ) -> None:
        """Ends the job: succeeded (with its result), failed or cancelled."""
        self._exec(
            f"UPDATE {job.table} SET state = ?, finished_at = ?, message = ?, result = ?, "
            "progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END "
            "WHERE id = ? AND worker = ? AND state = 'running'",
            state,
            now_iso(),
            message[:4000],
            json.dumps(result) if result is not None else None,
            state,
            job.id,
            self.worker_id,
        )


def _heartbeats(
    queue: JobQueue, job: Job, every: float, cancelled: threading.Event, stop: threading.Event
) -> None:
    """Renews the lease even while a long step (embedding, calibration, export) runs."""
    while not stop.wait(every):
        try:
            if queue.heartbeat(job):
                cancelled.set()
        except sqlite3.Error:
            pass  # a busy database is retried at the next beat; the lease leaves room for it


class Reporter:
    """What a running job reports through.

    Called as ``reporter(step, total, loss)`` it writes progress at most once a second and raises
    :class:`JobCancelledError` once the API asked to cancel (seen there or by the heartbeat).
    """

    def __init__(self, queue: JobQueue, job: Job, cancelled: threading.Event) -> None:
        """Reports for ``job``; ``cancelled`` is set by the heartbeat when the API asks."""
        self._queue = queue
        self._job = job
        self._cancelled = cancelled
        self._last = 0.0
        #: Names the steps in the job's message, e.g. ``qat`` gives "qat step 120/600".
        self.label = ""

    def __call__(self, step: int, total: int, loss: float | None) -> None:
        """Writes progress (throttled to once a second, and the last step)."""
        if self._cancelled.is_set():
            raise JobCancelledError
        now = time.monotonic()
        if now - self._last < 1.0 and step < total:
            return
        self._last = now
        text = " ".join(filter(None, (self.label, f"step {step}/{total}")))
        text += f", loss {loss:.4f}" if loss is not None else ""
        if self._queue.progress(self._job, step, total, loss, text):
            self._cancelled.set()
            raise JobCancelledError

    def note(self, message: str) -> None:
        """Writes the job's message (a stage without steps); raises once cancelled."""
        if self._queue.note(self._job, message):
            self._cancelled.set()
        if self._cancelled.is_set():
            raise JobCancelledError

    def cancelled(self) -> bool:
        """Whether the API asked to cancel, for code that polls rather than reports."""
        return self._cancelled.is_set()


Runner = Callable[[dict[str, Any], Reporter], dict[str, Any]]

# What a job that succeeded made, for its message: "new bundle <fingerprint>".
MADE = {TRAIN: "new bundle", FIT: "transform"}


def run_job(queue: JobQueue, job: Job, run: Runner) -> str:
    """Runs one claimed job to its end state with ``run(spec, reporter)``; returns the state.

    A spec that breaks its table's contract fails the job before ``run`` is called.
    :class:`JobError` fails it with its message alone, any other exception with a traceback too.
    """
    try:
        validate(CONTRACTS[job.table], job.spec)
    except ContractError as error:
        queue.finish(job, "failed", f"the job's spec {error}")
        return "failed"
    cancelled = threading.Event()
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeats,
        args=(queue, job, max(1.0, queue.lease_ms / 4000), cancelled, stop),
        daemon=True,
    )
    beat.start()
    try:
        result = run(job.spec, Reporter(queue, job, cancelled))
    except JobCancelledError:
        queue.finish(job, "cancelled", "cancelled while running")
        return "cancelled"
    except JobError as e:
        queue.finish(job, "failed", str(e))
        return "failed"
    except Exception as e:  # a job's failure is reported, and the worker goes on
        detail = traceback.format_exc(limit=3)
        queue.finish(job, "failed", f"{type(e).__name__}: {e}\n{detail}")
        return "failed"
    finally:
        stop.set()
        beat.join(timeout=5)
    queue.finish(job, "succeeded", f"{MADE[job.table]} {result.get('fingerprint')}", result)
    return "succeeded"


def describe(job: Job) -> str:
    """One line saying what a claimed job is, for the worker's log."""
    spec = job.spec
    if job.table == FIT:
        bits = ",".join(map(str, spec.get("bits", [])))
        return f"{spec.get('method')} fit of collection {spec.get('collection')} ({bits} bits)"
    return f"{spec.get('mode')} training on {spec.get('dataset')}"


def default_worker_id() -> str:
    """host:pid, so a job row names the process that ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def work_loop(
    queue: JobQueue,
    runners: dict[str, Runner],
    *,
    poll_seconds: float = 2.0,
    once: bool = False,
    idle_exit_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Claims and runs jobs until stopped; returns how many ran.

    Args:
        queue: The job queue.
        runners: Runs one job spec of each table (see :func:`run_job`).
        poll_seconds: Pause between looks at an empty queue.
        once: Stop after one job.
        idle_exit_seconds: Stop after this long without a job (None: never).
        log: Where status lines go.
    """
    ran = 0
    idle_since = time.monotonic()
    while True:
        reaped = queue.reap()
        if reaped:
            log(f"failed {reaped} job(s) whose worker stopped reporting")
        job = queue.claim()
        if job is None:
            if idle_exit_seconds is not None and time.monotonic() - idle_since > idle_exit_seconds:
                return ran
            time.sleep(poll_seconds)
            continue
        log(f"job {job.id}: {describe(job)}")
        state = run_job(queue, job, runners[job.table])
        log(f"job {job.id}: {state}")
        ran += 1
        idle_since = time.monotonic()
        if once:
            return ran
