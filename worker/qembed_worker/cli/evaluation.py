"""The command that measures a bundle: eval-bundle."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from qembed_worker.cli.options import UsageError, keywords


def _evaluate(args: argparse.Namespace) -> dict[str, Any] | None:
    from qembed_worker.eval.evaluate import (
        FIRST_STAGES,
        evaluate_bundle,
        format_table,
        format_transform_table,
    )
    from qembed_worker.eval.transforms import TRANSFORMS

    for option, given, allowed in (
        ("--first-stage", args.first_stages, FIRST_STAGES),
        ("--transforms", args.transforms, TRANSFORMS),
    ):
        unknown = [x for x in given if x not in allowed]
        if unknown or len(set(given)) != len(given):
            choices = ", ".join(allowed)
            raise UsageError(f"{option} {','.join(given)}: each of {choices} at most once")
    if not args.first_stages:
        raise UsageError("--first-stage: give hamming, asymmetric or both")
    report = evaluate_bundle(**keywords(args, evaluate_bundle, use_cache=not args.no_cache))
    print(format_table(report), file=sys.stderr)
    print(format_transform_table(report), file=sys.stderr)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out is None:
        print(text)
        return None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", "utf-8")
    return {"out": str(args.out), "fingerprint": report["bundle"]["fingerprint"]}


RUNS = {
    "eval-bundle": _evaluate,
}
