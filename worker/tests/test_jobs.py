"""The worker's side of the training job queue, against the API's schema."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from qembed_worker.jobs.queue import (
    FIT,
    TRAIN,
    JobCancelledError,
    JobQueue,
    connect,
    now_ms,
    run_job,
    work_loop,
)
from qembed_worker.qat.job import train_runner

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "jobs"


def create_queue(data_dir: Path) -> None:
    """jobs.sqlite as the API creates it: every migration in migrations/jobs/, in order."""
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        db.executescript(migration.read_text())
    db.close()


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    create_queue(tmp_path)
    return tmp_path


# A spec as the API stores it (contracts/train-job-spec.schema.json).
SPEC = {
    "dataset": "d",
    "dataset_path": "/datasets/d",
    "mode": "head",
    "loss": "distill",
    "precisions": ["float32", "int8", "binary"],
    "weights": [1, 1, 1],
    "steps": 10,
    "epochs": 20,
    "batch_size": 256,
    "learning_rate": 0.001,
    "seed": 0,
    "asymmetric": False,
    "crop_queries": True,
    "base_model": {"fingerprint": "0123456789abcdef", "dir": "/models/base", "name": "base"},
    "output_name": "base-qat-head",
}


def queue_job(
    data_dir: Path, job_id: str, created: str = "2026-01-01T00:00:00Z", spec: dict | None = None
) -> None:
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.execute(
        "INSERT INTO train_jobs (id, state, spec, created_at) VALUES (?, 'queued', ?, ?)",
        (job_id, json.dumps(SPEC if spec is None else spec), created),
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
    runners = {TRAIN: run, FIT: run}
    ran = work_loop(q, runners, poll_seconds=0.01, idle_exit_seconds=0.05, log=lambda _: None)
    assert ran == 2
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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": [1, -1, 1]}, "at weights.1: -1 is less than the minimum of 0"),
        ({"output_name": "../escape"}, "at output_name: '../escape' does not match"),
        ({"extra": 1}, "Additional properties are not allowed ('extra' was unexpected)"),
    ],
)
def test_a_spec_that_breaks_the_contract_fails_and_nothing_runs(
    data_dir: Path, change: dict, message: str
) -> None:
    queue_job(data_dir, "bad", spec={**SPEC, **change})
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    job = q.claim()
    assert job is not None
    ran = []
    assert run_job(q, job, lambda spec, on_step: ran.append(spec) or {}) == "failed"
    assert ran == []
    r = row(data_dir, "bad")
    assert r["state"] == "failed"
    assert "train-job-spec.schema.json" in r["message"] and message in r["message"]


def test_a_job_names_its_bundle_output_name(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import qembed_worker.qat.train as train_module

    seen = {}

    def fake_train(config):
        seen["config"] = config
        return {"fingerprint": "fedcba9876543210"}

    monkeypatch.setattr(train_module, "train", fake_train)
    spec = {**SPEC, "output_name": "my-model"}
    result = train_runner(tmp_path / "models")(spec, lambda *_: None)
    config = seen["config"]
    assert config.name == "my-model" and config.bundle_name({"name": "base"}) == "my-model"
    assert config.out.name.startswith("my-model-") and result["dir"] == str(config.out)


def test_the_heartbeat_renews_the_lease_while_a_step_runs_without_reporting(
    data_dir: Path,
) -> None:
    queue_job(data_dir, "j")
    q = JobQueue(connect(data_dir), "w", lease_seconds=2)
    job = q.claim()
    assert job is not None
    other = JobQueue(connect(data_dir), "other", lease_seconds=60)

    def run(spec, on_step):
        time.sleep(3.5)  # past the first lease: only the heartbeat thread keeps it
        return {"reaped": other.reap()}

    assert run_job(q, job, run) == "succeeded"
    assert json.loads(row(data_dir, "j")["result"]) == {"reaped": 0}
