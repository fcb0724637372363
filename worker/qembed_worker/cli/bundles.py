"""Commands that write or check bundles and test fixtures.

export, calibrate, check, fixture, golden and embed.
"""

from __future__ import annotations

import argparse
from typing import Any

from qembed_worker.cli.calibration_options import calibration_options
from qembed_worker.cli.options import UsageError, keywords, skipped


def _export(args: argparse.Namespace) -> dict[str, Any] | None:
    if (summary := skipped(args)) is not None:
        return summary
    if not 17 <= args.opset <= 22:
        raise UsageError("--opset must be between 17 and 22")
    if args.source is not None and args.model is not None:
        raise UsageError("pass --model or --source, not both")
    from qembed_worker.export.exporter import export_bundle

    model = str(args.source) if args.source is not None else args.model or "all-minilm-l6-v2"
    return export_bundle(
        **keywords(args, export_bundle, model=model, calibration=calibration_options(args))
    )


def _calibrate(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.calibration.ranges import calibrate_bundle

    return calibrate_bundle(**keywords(args, calibrate_bundle, options=calibration_options(args)))


def _fixture(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.testing.fixture import write_fixture

    return write_fixture(**keywords(args, write_fixture))


def _golden(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.testing.golden import write_golden

    return write_golden(args.out)


def _embed(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.testing.reference import write_reference_embeddings

    return write_reference_embeddings(**keywords(args, write_reference_embeddings))


def _check(args: argparse.Namespace) -> dict[str, Any]:
    from qembed_worker.bundle.manifest import check_bundle

    manifest = check_bundle(args.bundle)
    return {"bundle": str(args.bundle), "ok": True, "fingerprint": manifest["fingerprint"]}


RUNS = {
    "export": _export,
    "calibrate": _calibrate,
    "fixture": _fixture,
    "golden": _golden,
    "embed": _embed,
    "check": _check,
}
