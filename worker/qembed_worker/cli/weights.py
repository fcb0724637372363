"""Commands of the int8-weight encoder: quantize-weights, weight-qat and encoder-report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qembed_worker.cli.calibration_options import calibration_options
from qembed_worker.cli.options import (
    UsageError,
    keywords,
    skipped,
)


def _quantize_weights(args: argparse.Namespace) -> dict[str, Any]:
    if (summary := skipped(args)) is not None:
        return summary
    from qembed_worker.weights.ptq import quantize_weights_bundle

    return quantize_weights_bundle(
        **keywords(
            args, quantize_weights_bundle, method=args.scheme, calibration=calibration_options(args)
        )
    )


def _weight_qat(args: argparse.Namespace) -> dict[str, Any]:
    if args.batch_size < 2:
        raise UsageError("--batch-size must be at least 2 (the KL term compares texts)")
    from qembed_worker.weights.distill import DistillConfig
    from qembed_worker.weights.qat import weight_qat_bundle

    texts = None
    if args.parity_texts is not None:
        texts = json.loads(args.parity_texts.read_text(encoding="utf-8"))
    config = DistillConfig(**keywords(args, DistillConfig))
    return weight_qat_bundle(**keywords(args, weight_qat_bundle, config=config, parity_texts=texts))


def _encoder_report(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.weights.report import bench_passages, write_report

    bundles = []
    for item in args.bundle:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise UsageError(f"--bundle {item!r}: expected LABEL=DIR")
        bundles.append((label, Path(folder)))
    if args.timings is None and (args.speed_corpus is None or args.service_timings is None):
        raise UsageError("give --speed-corpus and --service-timings, or --timings")
    return write_report(
        bundles=bundles,
        datasets=args.dataset,
        out=args.out,
        passages=bench_passages(args.speed_corpus, args.texts) if args.speed_corpus else (),
        service_timings=(
            json.loads(args.service_timings.read_text(encoding="utf-8"))
            if args.service_timings
            else None
        ),
        rounds=args.rounds,
        timings_from=args.timings,
    )


RUNS = {
    "quantize-weights": _quantize_weights,
    "weight-qat": _weight_qat,
    "encoder-report": _encoder_report,
}
