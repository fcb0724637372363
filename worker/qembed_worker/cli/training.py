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
    from qembed_worker.jobs.queue import work_command

    return work_command(args)


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
