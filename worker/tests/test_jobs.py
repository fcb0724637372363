"""The worker's side of the training job queue, against the API's schema."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from qembed_worker.jobs.queue import (
    JobCancelledError,
    JobQueue,
    connect,
    now_ms,
    run_job,
    work_loop,
)

SCHEMA = Path(__file__).resolve().parents[2] / "migrations" / "jobs" / "001-train-jobs.sql"


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    db = sqlite3.connect(tmp_path / "jobs.sqlite")
    db.executescript(SCHEMA.read_text())
    db.close()
    return tmp_path


def queue_job(data_dir: Path, job_id: str, created: str = "2026-01-01T00:00:00Z") -> None:
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.execute(
        "INSERT INTO train_jobs (id, state, spec, created_at) VALUES (?, 'queued', ?, ?)",
        (job_id, json.dumps({"mode": "head", "dataset": "d", "steps": 10}), created),
    )
    db.commit()
    db.close()


def row(data_dir: Path, job_id: str) -> sqlite3.Row:
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.row_factory = sqlite3.Row
    r = db.execute("SELECT * FROM train_jobs WHERE id = ?", (job_id,)).fetchone()
    db.close()
    return r


def test_each_job_is_claimed_by_exactly_one_worker(data_dir: Path) -> None:
    for i in range(20):
        queue_job(data_dir, f"j{i:02d}", f"2026-01-01T00:00:{i:02d}Z")
    claimed: dict[str, list[str]] = {"a": [], "b": []}

    def worker(name: str) -> None:
        q = JobQueue(connect(data_dir), name, lease_seconds=60)
        while (job := q.claim()) is not None:
            claimed[name].append(job.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed["a"] + claimed["b"]
    assert sorted(everything) == [f"j{i:02d}" for i in range(20)]
    assert len(set(everything)) == 20
    assert row(data_dir, "j00")["state"] == "running"


def test_progress_and_success_are_written_back(data_dir: Path) -> None:
    queue_job(data_dir, "j1")
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    job = q.claim()
    assert job is not None and job.spec["steps"] == 10

    def run(spec, on_step):
        for step in range(1, 11):
            on_step(step, 10, 1.0 / step)
        return {"fingerprint": "0123456789abcdef", "dir": "/models/x"}

    assert run_job(q, job, run) == "succeeded"
    r = row(data_dir, "j1")
    assert r["state"] == "succeeded" and r["progress"] == 1.0 and r["step"] == 10
    assert json.loads(r["result"])["fingerprint"] == "0123456789abcdef"
    assert r["finished_at"]


def test_a_failing_job_is_failed_with_its_error_and_the_worker_goes_on(data_dir: Path) -> None:
    queue_job(data_dir, "bad", "2026-01-01T00:00:00Z")
    queue_job(data_dir, "good", "2026-01-01T00:00:01Z")
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)

    def run(spec, on_step):
        if spec is not None and run.calls == 0:
            run.calls += 1
            raise ValueError("the dataset has no corpus")
        return {"fingerprint": "f"}

    run.calls = 0
    assert work_loop(q, run, poll_seconds=0.01, idle_exit_seconds=0.05, log=lambda _: None) == 2
    assert row(data_dir, "bad")["state"] == "failed"
    assert "the dataset has no corpus" in row(data_dir, "bad")["message"]
    assert row(data_dir, "good")["state"] == "succeeded"


def test_cancellation_is_noticed_at_the_next_progress_report(data_dir: Path) -> None:
    queue_job(data_dir, "j")
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    job = q.claim()
    assert job is not None

    def run(spec, on_step):
        on_step(1, 100, 0.5)
        db = sqlite3.connect(data_dir / "jobs.sqlite")
        db.execute("UPDATE train_jobs SET cancel_requested = 1 WHERE id = 'j'")
        db.commit()
        db.close()
        for step in range(2, 101):
            time.sleep(0.02)
            on_step(step, 100, 0.5)
        raise AssertionError("not cancelled")

    assert run_job(q, job, run) == "cancelled"
    assert row(data_dir, "j")["state"] == "cancelled"


def test_a_dead_workers_job_fails_when_its_lease_runs_out(data_dir: Path) -> None:
    queue_job(data_dir, "j")
    dead = JobQueue(connect(data_dir), "dead", lease_seconds=60)
    assert dead.claim() is not None
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.execute("UPDATE train_jobs SET lease_expires_at = ?", (now_ms() - 1,))
    db.commit()
    db.close()
    assert JobQueue(connect(data_dir), "other", lease_seconds=60).reap() == 1
    r = row(data_dir, "j")
    assert r["state"] == "failed" and "lease expired" in r["message"]


def test_the_worker_waits_for_the_api_to_create_the_queue(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="start the API first"):
        connect(tmp_path, wait_seconds=0.1)


def test_on_step_raises_once_cancelled(data_dir: Path) -> None:
    queue_job(data_dir, "j")
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    job = q.claim()
    assert job is not None
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.execute("UPDATE train_jobs SET cancel_requested = 1")
    db.commit()
    db.close()

    def run(spec, on_step):
        with pytest.raises(JobCancelledError):
            on_step(5, 5, None)
        raise JobCancelledError

    assert run_job(q, job, run) == "cancelled"
