"""Fit jobs from the API's queue: a collection's code transform fitted on its int8 codes.

The service writes ``fit-jobs/<id>/codes.npy`` under its data folder, queues the job (table
``fit_jobs`` of ``jobs.sqlite``, spec in ``contracts/fit-job-spec.schema.json``) and, once the
job succeeded, imports the ``qembed.transform/v1`` folder written to ``fit-jobs/<id>/transform``,
reading the job's result: ``{fingerprint, artifact, method, bits, evaluation, training,
seconds}``. The fit is CPU-heavy and the service shares the machine, so it runs on few torch
threads (the spec's ``threads``, else ``QEMBED_FIT_THREADS``, else 1) in a worker process that
lowered its priority.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from qembed_worker.jobs.queue import JobError, Reporter, Runner

# Niceness of a worker that runs fits: the service's requests come first on a shared machine.
FIT_NICENESS = 10
THREADS_ENV = "QEMBED_FIT_THREADS"


def inside(data_dir: Path, relative: str) -> Path:
    """``relative`` under ``data_dir``, refusing a path that leaves it (by ``..`` or a link).

    Raises:
        JobError: The path resolves outside ``data_dir``.
    """
    root = data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise JobError(f"{relative} resolves outside the data folder {root}; refusing to use it")
    return path


def fit_threads(spec: dict[str, Any]) -> int:
    """The torch threads of a fit: the spec's ``threads``, else ``QEMBED_FIT_THREADS``, else 1.

    Raises:
        JobError: ``QEMBED_FIT_THREADS`` is not a positive integer.
    """
    if "threads" in spec:
        return int(spec["threads"])
    configured = os.environ.get(THREADS_ENV, "1")
    if not configured.isdigit() or int(configured) < 1:
        raise JobError(f"{THREADS_ENV}={configured!r}: give a positive number of threads")
    return int(configured)


def lower_priority() -> None:
    """Let the service go first: every thread of the worker under SCHED_IDLE, at niceness 10.

    SCHED_IDLE (Linux) runs a thread only on a CPU nothing else wants: a fit beside a saturated
    service costs its searches 2.3% (95% interval 0.7 to 3.8%, ``npm run bench:fit-cost``) where
    niceness 10 alone cost 12% (7.3 to 16.3%), and waits while the service is saturated. Threads
    started later (torch's) inherit it. Elsewhere, or where the policy is refused, the niceness
    alone. An unprivileged process cannot take either back, so the worker stays this way after its
    first fit, training jobs included: on a machine it shares with the service that is wanted.
    """
    current = os.nice(0)
    if current < FIT_NICENESS:
        os.nice(FIT_NICENESS - current)
    if not hasattr(os, "SCHED_IDLE"):
        return
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        # A thread that ended meanwhile, or a policy this system refuses: the niceness stays.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def fit_runner(data_dir: Path) -> Runner:
    """Runs a fit job spec (as the API stores it) with :func:`.fit.fit_transform`.

    Args:
        data_dir: The API's data folder: the spec's ``sample`` and ``out`` are relative to it.
    """

    def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
        import torch

        from qembed_worker.transform import TransformError
        from qembed_worker.transform.fit import fit_transform, load_collection

        started = time.perf_counter()
        sample = inside(data_dir, spec["sample"])
        out = inside(data_dir, spec["out"])
        bundle = Path(spec["bundle"])
        threads = fit_threads(spec)
        if not (bundle / "manifest.json").is_file():
            raise JobError(f"no model bundle at {bundle} (manifest.json is missing)")
        lower_priority()
        try:
            collection = load_collection(sample, None, bundle)
            if collection.model != spec["model"]:
                raise JobError(
                    f"the bundle at {bundle} is model {collection.model}, but the job's codes came "
                    f"from model {spec['model']}: its ranges would dequantize them wrongly"
                )
            n, holdout = len(collection.vectors), int(spec["holdout"])
            report.label = spec["method"]
            bits = ",".join(map(str, spec["bits"]))
            report.note(
                f"fitting {spec['method']} on {max(n - holdout, 0)} of {n} sampled documents "
                f"({holdout} held out), {bits} bits, {threads} thread(s)"
            )
            steps = {"steps": int(spec["steps"])} if "steps" in spec else {}
            # fit_transform sets torch's threads for the whole process: give a training job
            # that runs next the threads it would have had.
            before = torch.get_num_threads()
            try:
                manifest = fit_transform(
                    collection,
                    bits=tuple(spec["bits"]),
                    method=spec["method"],
                    seed=int(spec["seed"]),
                    # The service bounded the sample it wrote: fit all of it but the holdout.
                    max_documents=n,
                    holdout=holdout,
                    out=out,
                    threads=threads,
                    progress=report,
                    cancelled=report.cancelled,
                    **steps,
                )
            finally:
                torch.set_num_threads(before)
        except TransformError as error:
            raise JobError(f"the fit cannot run: {error}") from error
        return {
            "fingerprint": manifest["fingerprint"],
            "artifact": spec["out"],
            "method": manifest["method"],
            "bits": [int(bits) for bits in manifest["lengths"]],
            "evaluation": manifest["evaluation"],
            "training": manifest["training"],
            "seconds": round(time.perf_counter() - started, 1),
        }

    return run
