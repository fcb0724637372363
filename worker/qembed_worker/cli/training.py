"""Commands that train: train (QAT), work (the API's job queue) and qat-report."""

from __future__ import annotations

import argparse
from typing import Any

from qembed_worker.cli.options import keywords, skipped


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.qat.config import TrainConfig
    from qembed_worker.qat.train import train

    return train(TrainConfig(**keywords(args, TrainConfig)))


def _work(args: argparse.Namespace) -> dict[str, Any]:
    import os

    from qembed_worker.jobs.queue import (
        FIT,
        TRAIN,
        JobQueue,
        connect,
        default_worker_id,
        now_iso,
        work_loop,
    )
    from qembed_worker.qat.job import train_runner
    from qembed_worker.transform.job import fit_runner

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    args.models_dir.mkdir(parents=True, exist_ok=True)
    queue = JobQueue(
        connect(args.data_dir, args.wait_seconds), default_worker_id(), args.lease_seconds
    )

    def log(line: str) -> None:
        print(f"[qembed-worker {now_iso()}] {line}", flush=True)

    log(f"waiting for jobs in {args.data_dir / 'jobs.sqlite'} as {queue.worker_id}")
    ran = work_loop(
        queue,
        {TRAIN: train_runner(args.models_dir), FIT: fit_runner(args.data_dir)},
        poll_seconds=args.poll_seconds,
        once=args.once,
        idle_exit_seconds=args.idle_exit_seconds,
        log=log,
    )
    return {"jobs": ran}


def _report(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.qat.report import qat_report

    return qat_report(**keywords(args, qat_report, sweep=not args.reuse_sweep))


def _bake_head(args: argparse.Namespace) -> dict[str, Any]:
    if (summary := skipped(args)) is not None:
        return summary
    from qembed_worker.qat.bake import bake_head_bundle

    return bake_head_bundle(**keywords(args, bake_head_bundle))


RUNS = {
    "bake-head": _bake_head,
    "train": _train,
    "work": _work,
    "qat-report": _report,
}
