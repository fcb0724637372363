"""The calibration options shared by every command that calibrates a bundle.

One place for the argparse group, its checks and the keyword arguments of
:func:`qembed_worker.calibration.ranges.calibrate` made from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_calibration_options(parser: argparse.ArgumentParser, *, default_limit: int | None) -> None:
    """Add the calibration options (one group) that every bundle-writing command takes."""
    group = parser.add_argument_group("calibration")
    group.add_argument(
        "--corpus",
        default="lee",
        help="calibration corpus: 'lee' (the Lee background news corpus, 300 ABC articles split "
        "into ~1200 passages, read from the gensim 4.4.0 wheel and verified by SHA-256) or a "
        "path to a BEIR corpus.jsonl (title + ' ' + text), a .jsonl with a 'text' field, or a "
        ".txt file with one text per line",
    )
    group.add_argument(
        "--limit",
        type=int,
        default=default_limit,
        help="embed only the first N texts of the corpus (all when omitted)",
    )
    group.add_argument(
        "--method",
        choices=("minmax", "quantile"),
        default="minmax",
        help="minmax: per-dimension min/max over the corpus (as sentence-transformers' "
        "quantize_embeddings does); quantile: the q and 1-q quantiles, clamping outliers",
    )
    group.add_argument(
        "--quantile",
        type=float,
        default=None,
        help="for --method quantile: the tail clipped on each side, 0 < q < 0.5 (e.g. 0.001)",
    )
    group.add_argument(
        "--input-type",
        choices=("document", "query"),
        default="document",
        help="which of the bundle's prompts is prepended to the calibration texts",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="texts per onnxruntime call when embedding the corpus (length-sorted)",
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where the gensim wheel holding the Lee corpus is cached "
        "(default: $QEMBED_CORPUS_CACHE or ~/.cache/qembed/corpora)",
    )


def check_calibration_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error when the calibration options contradict each other."""
    if args.method == "quantile":
        if args.quantile is None:
            parser.error("--method quantile needs --quantile q (e.g. 0.001)")
        if not 0 < args.quantile < 0.5:
            parser.error("--quantile must be between 0 and 0.5 (exclusive)")
    elif args.quantile is not None:
        parser.error("--quantile only applies to --method quantile")
    if args.limit is not None and args.limit <= 0:
        parser.error("--limit must be positive")
    if args.batch_size <= 0:
        parser.error("--batch-size must be positive")


def calibration_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The shared calibration options as keyword arguments.

    For :func:`qembed_worker.calibration.ranges.calibrate` and the commands that call it (the
    options are added by :func:`add_calibration_options`).
    """
    return {
        "corpus": args.corpus,
        "limit": args.limit,
        "method": args.method,
        "quantile": args.quantile,
        "input_type": args.input_type,
        "batch_size": args.batch_size,
        "cache_dir": args.cache_dir,
    }
