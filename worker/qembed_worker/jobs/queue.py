"""The worker's job loop: claim training jobs the API queued (POST /train-jobs), run them, report.

The queue is ``<data-dir>/jobs.sqlite``, created by the API (migrations/jobs/). A job is claimed
by one conditional UPDATE inside an immediate transaction, so two workers never run the same
job. While it runs, the worker renews the job's lease and writes its progress (step, loss) back
into the row; a worker that dies stops renewing, and the API fails the job when the lease runs
out. Cancellation (DELETE /train-jobs/{id}) is noticed at the next progress report. A claimed
spec is checked against ``contracts/train-job-spec.schema.json``, the schema the API validates
the specs it queues against: one that breaks it fails with the schema's message, and nothing runs.
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

from qembed_worker.contracts import TRAIN_JOB_SPEC, ContractError, validate

CLAIM_SQL = """
UPDATE train_jobs SET state = 'running', worker = ?, started_at = ?, lease_expires_at = ?,
  message = 'claimed by ' || ?
WHERE id = (SELECT id FROM train_jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1)
  AND state = 'queued'
RETURNING id, spec
"""

REAP_SQL = """
UPDATE train_jobs SET state = 'failed', finished_at = ?,
  message = 'the worker stopped reporting: lease expired at ' || ? ||
    ' (it probably died); submit the job again'
WHERE state = 'running' AND lease_expires_at < ?
"""


class JobCancelledError(Exception):
    """Raised inside a running job when the API asked to cancel it."""


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
            ready = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'train_jobs'"
            ).fetchone()
            if ready:
                db.execute("PRAGMA journal_mode = WAL")
                return db
            db.close()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{path} has no train_jobs table: start the API first (it creates the job queue)"
            )
        time.sleep(1.0)


@dataclass
class Job:
    """A claimed job: its id and the spec the API stored (defaults filled in)."""

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
        return self._exec(REAP_SQL, at, at, now_ms()).rowcount

    def claim(self) -> Job | None:
        """Takes the oldest queued job, or None when there is none."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute(
                    CLAIM_SQL,
                    (self.worker_id, now_iso(), now_ms() + self.lease_ms, self.worker_id),
                ).fetchone()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        if row is None:
            return None
        return Job(id=row["id"], spec=json.loads(row["spec"]))

    def _renew(self, job_id: str, assignments: str = "", *values: object) -> bool:
        """Renews the lease, writing ``assignments`` too; returns whether cancellation was asked."""
        row = self._exec(
            f"UPDATE train_jobs SET {assignments}lease_expires_at = ? WHERE id = ? AND worker = ? "
            "AND state = 'running' RETURNING cancel_requested",
            *values,
            now_ms() + self.lease_ms,
            job_id,
            self.worker_id,
        ).fetchone()
        return bool(row is None or row["cancel_requested"])

    def heartbeat(self, job_id: str) -> bool:
        """Renews the lease; returns whether the API asked to cancel the job."""
        return self._renew(job_id)

    def progress(
        self, job_id: str, step: int, total: int, loss: float | None, message: str
    ) -> bool:
        """Writes progress (and renews the lease); returns whether cancellation was asked."""
        return self._renew(
            job_id,
            "step = ?, total_steps = ?, progress = ?, loss = ?, message = ?, ",
            step,
            total,
            min(1.0, max(0.0, step / total)) if total else 0.0,
            loss,
            message,
        )

    def finish(
        self, job_id: str, state: str, message: str, result: dict[str, Any] | None = None
    ) -> None:
        """Ends the job: succeeded (with its result), failed or cancelled."""
        self._exec(
            "UPDATE train_jobs SET state = ?, finished_at = ?, message = ?, result = ?, "
            "progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END "
            "WHERE id = ? AND worker = ? AND state = 'running'",
            state,
            now_iso(),
            message[:4000],
            json.dumps(result) if result is not None else None,
            state,
            job_id,
            self.worker_id,
        )


def _heartbeats(
    queue: JobQueue, job_id: str, every: float, cancelled: threading.Event, stop: threading.Event
) -> None:
    """Renews the lease even while a long step (embedding, calibration, export) runs."""
    while not stop.wait(every):
        try:
            if queue.heartbeat(job_id):
                cancelled.set()
        except sqlite3.Error:
            pass  # a busy database is retried at the next beat; the lease leaves room for it


def run_job(
    queue: JobQueue,
    job: Job,
    run: Callable[[dict[str, Any], Callable[[int, int, float | None], None]], dict[str, Any]],
) -> str:
    """Runs one claimed job to its end state with ``run(spec, on_step)``; returns the state.

    ``on_step(step, total, loss)`` writes progress at most once a second and raises
    :class:`JobCancelledError` once the API asked to cancel. A spec that breaks its contract
    fails the job before ``run`` is called.
    """
    try:
        validate(TRAIN_JOB_SPEC, job.spec)
    except ContractError as error:
        queue.finish(job.id, "failed", f"the job's spec {error}")
        return "failed"
    cancelled = threading.Event()
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeats,
        args=(queue, job.id, max(1.0, queue.lease_ms / 4000), cancelled, stop),
        daemon=True,
    )
    beat.start()
    last = 0.0

    def on_step(step: int, total: int, loss: float | None) -> None:
        nonlocal last
        if cancelled.is_set():
            raise JobCancelledError
        now = time.monotonic()
        if now - last < 1.0 and step < total:
            return
        last = now
        text = f"step {step}/{total}" + (f", loss {loss:.4f}" if loss is not None else "")
        if queue.progress(job.id, step, total, loss, text):
            cancelled.set()
            raise JobCancelledError

    try:
        result = run(job.spec, on_step)
    except JobCancelledError:
        queue.finish(job.id, "cancelled", "cancelled while running")
        return "cancelled"
    except Exception as e:  # a job's failure is reported, and the worker goes on
        detail = traceback.format_exc(limit=3)
        queue.finish(job.id, "failed", f"{type(e).__name__}: {e}\n{detail}")
        return "failed"
    finally:
        stop.set()
        beat.join(timeout=5)
    queue.finish(job.id, "succeeded", f"new bundle {result.get('fingerprint')}", result)
    return "succeeded"


def default_worker_id() -> str:
    """host:pid, so a job row names the process that ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def work_loop(
    queue: JobQueue,
    run: Callable[[dict[str, Any], Callable[[int, int, float | None], None]], dict[str, Any]],
    *,
    poll_seconds: float = 2.0,
    once: bool = False,
    idle_exit_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Claims and runs jobs until stopped; returns how many ran.

    Args:
        queue: The job queue.
        run: Runs one job spec (see :func:`run_job`).
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
        log(f"job {job.id}: {job.spec.get('mode')} training on {job.spec.get('dataset')}")
        state = run_job(queue, job, run)
        log(f"job {job.id}: {state}")
        ran += 1
        idle_since = time.monotonic()
        if once:
            return ran


def train_runner(
    models_dir: Path,
) -> Callable[[dict[str, Any], Callable[[int, int, float | None], None]], dict[str, Any]]:
    """Runs a job spec (as the API stores it) with :func:`qembed_worker.qat.train.train`.

    The new bundle is named ``output_name`` (its manifest ``name``, what requests send as
    ``model``) and goes to ``<models-dir>/<output_name>-<fingerprint of the source>-<n>``, a
    folder name no earlier job used.
    """

    def run(
        spec: dict[str, Any], on_step: Callable[[int, int, float | None], None]
    ) -> dict[str, Any]:
        from qembed_worker.qat.config import TrainConfig
        from qembed_worker.qat.train import train

        base = spec["base_model"]
        stem = f"{spec['output_name']}-{base['fingerprint'][:8]}"
        n = 1
        while (models_dir / f"{stem}-{n}").exists():
            n += 1
        out = models_dir / f"{stem}-{n}"
        config = TrainConfig(
            bundle=Path(base["dir"]),
            dataset=Path(spec["dataset_path"]),
            out=out,
            mode=spec["mode"],
            loss=spec["loss"],
            precisions=tuple(spec["precisions"]),
            weights=tuple(float(w) for w in spec["weights"]),
            asymmetric=bool(spec["asymmetric"]),
            batch_size=int(spec["batch_size"]),
            lr=float(spec["learning_rate"]),
            seed=int(spec["seed"]),
            epochs=int(spec["epochs"]),
            max_steps=int(spec["steps"]) if spec["steps"] is not None else None,
            crop_queries=bool(spec["crop_queries"]),
            name=spec["output_name"],
            checkpoint_dir=models_dir / ".checkpoints" / out.name,
            progress=False,
            on_step=on_step,
        )
        summary = train(config)
        return {"fingerprint": summary["fingerprint"], "dir": str(out), "summary": summary}

    return run


def work_command(args: Any) -> dict[str, Any]:
    """``python -m qembed_worker work``: the job loop with the CLI's options."""
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    args.models_dir.mkdir(parents=True, exist_ok=True)
    queue = JobQueue(
        connect(args.data_dir, args.wait_seconds), default_worker_id(), args.lease_seconds
    )

    def log(line: str) -> None:
        print(f"[qembed-worker {now_iso()}] {line}", flush=True)

    log(f"waiting for training jobs in {args.data_dir / 'jobs.sqlite'} as {queue.worker_id}")
    ran = work_loop(
        queue,
        train_runner(args.models_dir),
        poll_seconds=args.poll_seconds,
        once=args.once,
        idle_exit_seconds=args.idle_exit_seconds,
        log=log,
    )
    return {"jobs": ran}
