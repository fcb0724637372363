"""Transform fits through the job queue: claimed, progressed, cancelled and failed like training."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qembed_worker.jobs.queue import FIT, TRAIN, JobQueue, connect, run_job, work_loop
from qembed_worker.quant.codes import int8_codes
from qembed_worker.transform.artifact import read_transform
from qembed_worker.transform.job import fit_runner

from .conftest import TINY_BUNDLE
from .test_jobs import SPEC as TRAIN_SPEC
from .test_jobs import create_queue

MANIFEST = json.loads((TINY_BUNDLE / "manifest.json").read_text())


def fit_spec(job_id: str, **change) -> dict:
    """A fit spec as the API stores it (contracts/fit-job-spec.schema.json)."""
    return {
        "collection": "docs",
        "collection_id": 1,
        "model": MANIFEST["fingerprint"],
        "bundle": str(TINY_BUNDLE),
        "sample": f"fit-jobs/{job_id}/codes.npy",
        "out": f"fit-jobs/{job_id}/transform",
        "bits": [16],
        "method": "itq",
        "seed": 0,
        "holdout": 50,
        **change,
    }


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    create_queue(tmp_path)
    return tmp_path


def write_sample(data_dir: Path, job_id: str, n: int = 300) -> None:
    """What the service writes before it queues a fit: n correlated int8 codes of the bundle."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 32)).astype(np.float32) @ rng.standard_normal((32, 32)) / 8
    calibration = MANIFEST["calibration"]
    (data_dir / "fit-jobs" / job_id).mkdir(parents=True)
    np.save(
        data_dir / "fit-jobs" / job_id / "codes.npy",
        int8_codes(x, calibration["min"], calibration["max"]),
    )


def queue(data_dir: Path, table: str, job_id: str, spec: dict, created: str) -> None:
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    if table == FIT:
        db.execute(
            "INSERT INTO fit_jobs (id, state, collection, spec, created_at) "
            "VALUES (?, 'queued', ?, ?, ?)",
            (job_id, spec["collection"], json.dumps(spec), created),
        )
    else:
        db.execute(
            "INSERT INTO train_jobs (id, state, spec, created_at) VALUES (?, 'queued', ?, ?)",
            (job_id, json.dumps(spec), created),
        )
    db.commit()
    db.close()


def queue_fit(data_dir: Path, job_id: str, **change) -> None:
    write_sample(data_dir, job_id)
    queue(data_dir, FIT, job_id, fit_spec(job_id, **change), "2026-01-01T00:00:00Z")


def row(data_dir: Path, job_id: str) -> sqlite3.Row:
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.row_factory = sqlite3.Row
    r = db.execute("SELECT * FROM fit_jobs WHERE id = ?", (job_id,)).fetchone()
    db.close()
    return r


class RecordingQueue(JobQueue):
    """The queue, keeping every progress message written (the last one is overwritten)."""

    messages: list[str]

    def progress(self, job, step, total, loss, message):
        self.messages.append(message)
        return super().progress(job, step, total, loss, message)


def recording_queue(data_dir: Path, lease_seconds: float = 60) -> RecordingQueue:
    q = RecordingQueue(connect(data_dir), "w", lease_seconds=lease_seconds)
    q.messages = []
    return q


@pytest.mark.parametrize("method", ["itq", "qat"])
def test_a_fit_job_runs_to_a_result_the_service_can_import(data_dir: Path, method: str) -> None:
    import torch

    threads = torch.get_num_threads()
    queue_fit(data_dir, "f1", method=method, steps=5)
    q = recording_queue(data_dir)
    runners = {FIT: fit_runner(data_dir), TRAIN: lambda *_: pytest.fail("not a training job")}
    assert work_loop(q, runners, once=True, log=lambda _: None) == 1
    r = row(data_dir, "f1")
    assert r["state"] == "succeeded" and r["progress"] == 1.0, r["message"]
    result = json.loads(r["result"])
    assert set(result) == {
        "fingerprint",
        "artifact",
        "method",
        "bits",
        "evaluation",
        "training",
        "seconds",
    }
    artifact = read_transform(data_dir / result["artifact"]).manifest
    assert result["artifact"] == "fit-jobs/f1/transform"
    assert result["fingerprint"] == artifact["fingerprint"]
    assert r["message"] == f"transform {artifact['fingerprint']}"
    assert result["method"] == method and result["bits"] == [16]
    assert result["evaluation"] == artifact["evaluation"]
    assert result["training"] == artifact["training"] and result["training"]["threads"] == 1
    assert artifact["model"] == MANIFEST["fingerprint"]
    assert artifact["sample"]["documents"] == 250 and artifact["sample"]["holdout"] == 50
    if method == "qat":
        assert (r["step"], r["total_steps"]) == (5, 5) and r["loss"] is not None
        assert q.messages[-1].startswith("qat step 5/5, loss ")
    else:
        assert q.messages == []
    # A training job may run next in this process: the fit leaves it torch's threads as they
    # were, and the lowered priority (a worker on the service's machine stays nice).
    assert torch.get_num_threads() == threads
    assert os.nice(0) >= 10
    if hasattr(os, "SCHED_IDLE"):
        assert os.sched_getscheduler(0) == os.SCHED_IDLE


@pytest.fixture(autouse=True)
def _normal_policy_after() -> Iterator[None]:
    """Give the test process its normal scheduling back after a fit lowered it (where allowed).

    A fit job puts the worker under SCHED_IDLE (lower_priority); the rest of the test session
    should not wait behind every other process of the machine.
    """
    yield
    if not hasattr(os, "SCHED_IDLE"):
        return
    for task in Path("/proc/self/task").iterdir():
        # Not allowed (an unprivileged run), or a thread that ended.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(int(task.name), os.SCHED_OTHER, os.sched_param(0))


def test_a_queued_fit_goes_before_an_older_training_job(data_dir: Path) -> None:
    queue(data_dir, TRAIN, "t", TRAIN_SPEC, "2026-01-01T00:00:00Z")
    queue(data_dir, FIT, "f", fit_spec("f"), "2026-01-02T00:00:00Z")
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    first, second = q.claim(), q.claim()
    assert first is not None and (first.table, first.id) == (FIT, "f")
    assert second is not None and (second.table, second.id) == (TRAIN, "t")
    assert q.claim() is None


def test_a_fit_cancelled_mid_run_ends_cancelled_and_writes_nothing(data_dir: Path) -> None:
    queue_fit(data_dir, "c", method="qat", steps=1_000_000)
    q = JobQueue(connect(data_dir), "w", lease_seconds=4)
    job = q.claim()
    assert job is not None
    states: list[str] = []
    running = threading.Thread(target=lambda: states.append(run_job(q, job, fit_runner(data_dir))))
    running.start()
    deadline = time.monotonic() + 60
    while (row(data_dir, "c")["step"] or 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    db = sqlite3.connect(data_dir / "jobs.sqlite")
    db.execute("UPDATE fit_jobs SET cancel_requested = 1 WHERE id = 'c'")
    db.commit()
    db.close()
    running.join(timeout=60)
    assert states == ["cancelled"]
    assert row(data_dir, "c")["state"] == "cancelled"
    assert not (data_dir / "fit-jobs" / "c" / "transform").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bits": [12]}, "at bits.0: 12 is not a multiple of 8"),
        ({"sample": "../qembed.sqlite"}, "at sample: '../qembed.sqlite' does not match"),
        ({"out": "/tmp/elsewhere"}, "at out: '/tmp/elsewhere' does not match"),
        ({"method": "pca"}, "at method: 'pca' is not one of ['itq', 'qat']"),
        ({"threads": 1, "extra": 1}, "('extra' was unexpected)"),
    ],
)
def test_a_fit_spec_that_breaks_the_contract_fails_with_its_message(
    data_dir: Path, change: dict, message: str
) -> None:
    queue_fit(data_dir, "bad", **change)
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    job = q.claim()
    assert job is not None
    assert run_job(q, job, fit_runner(data_dir)) == "failed"
    r = row(data_dir, "bad")
    assert "fit-job-spec.schema.json" in r["message"] and message in r["message"], r["message"]
    assert not (data_dir / "fit-jobs" / "bad" / "transform").exists()


def test_fits_the_worker_cannot_run_fail_with_a_clear_message(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    queue_fit(data_dir, "other-model", model="0123456789abcdef")
    queue_fit(data_dir, "holdout", holdout=290)
    queue_fit(data_dir, "escape")
    outside = tmp_path_factory.mktemp("outside")
    (data_dir / "fit-jobs" / "escape" / "codes.npy").rename(outside / "codes.npy")
    (data_dir / "fit-jobs" / "escape").rmdir()
    (data_dir / "fit-jobs" / "escape").symlink_to(outside)
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    runners = {FIT: fit_runner(data_dir), TRAIN: lambda *_: pytest.fail("not a training job")}
    assert work_loop(q, runners, poll_seconds=0.01, idle_exit_seconds=0, log=lambda _: None) == 3
    messages = {job_id: row(data_dir, job_id)["message"] for job_id in ("other-model", "holdout")}
    assert messages["other-model"].startswith(
        f"the bundle at {TINY_BUNDLE} is model {MANIFEST['fingerprint']}, but the job's codes "
        "came from model 0123456789abcdef"
    )
    assert messages["holdout"].startswith("the fit cannot run: --holdout 290 leaves 10 of the 300")
    assert "Traceback" not in "".join(messages.values())
    escape = row(data_dir, "escape")
    assert escape["state"] == "failed"
    assert "fit-jobs/escape/codes.npy resolves outside the data folder" in escape["message"]


def test_threads_come_from_the_spec_else_the_environment(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("QEMBED_FIT_THREADS", "2")
    queue_fit(data_dir, "env")
    q = JobQueue(connect(data_dir), "w", lease_seconds=60)
    job = q.claim()
    assert job is not None and run_job(q, job, fit_runner(data_dir)) == "succeeded"
    assert json.loads(row(data_dir, "env")["result"])["training"]["threads"] == 2
    monkeypatch.setenv("QEMBED_FIT_THREADS", "none")
    queue_fit(data_dir, "spec", threads=1, seed=1)
    job = q.claim()
    assert job is not None and run_job(q, job, fit_runner(data_dir)) == "succeeded"
    assert json.loads(row(data_dir, "spec")["result"])["training"]["threads"] == 1
