"""The command that measures a bundle: eval-bundle."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from qembed_worker.cli.options import keywords


def _evaluate(args: argparse.Namespace) -> dict[str, Any] | None:
    from qembed_worker.eval.evaluate import evaluate_bundle, format_table

    report = evaluate_bundle(**keywords(args, evaluate_bundle, use_cache=not args.no_cache))
    print(format_table(report), file=sys.stderr)
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
