"""The command that fits a collection's code transform: fit-transform."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qembed_worker.cli.options import keywords


def _fit_transform(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from qembed_worker.transform.fit import fit_transform, format_table, load_collection

    collection = load_collection(args.int8, args.vectors, args.bundle)
    with tqdm(desc="qat", unit="step", disable=args.method != "qat") as bar:

        def progress(step: int, total: int, loss: float | None) -> None:
            bar.total = total
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}" if loss is not None else "-")

        manifest = fit_transform(collection, **keywords(args, fit_transform, progress=progress))
    print(format_table(manifest), file=sys.stderr)
    return {"out": str(args.out), **manifest}


RUNS = {
    "fit-transform": _fit_transform,
}
