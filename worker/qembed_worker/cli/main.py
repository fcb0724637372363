"""Command line: ``python -m qembed_worker <command> --help``.

The commands and their options are declared in ``commands.toml`` (:mod:`~qembed_worker.cli.spec`
builds the parser); what each does lives in one module per concern
(:mod:`~qembed_worker.cli.bundles`, :mod:`~qembed_worker.cli.evaluation`,
:mod:`~qembed_worker.cli.training`, :mod:`~qembed_worker.cli.transforms`,
:mod:`~qembed_worker.cli.weights`), whose ``run`` functions
return the summary printed here as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from qembed_worker import __version__
from qembed_worker.cli import bundles, evaluation, spec, training, transforms, weights
from qembed_worker.cli.options import UsageError

COMMAND_MODULES = (bundles, evaluation, training, transforms, weights)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``qembed_worker`` argument parser with all its subcommands."""
    runs = {name: run for module in COMMAND_MODULES for name, run in module.RUNS.items()}
    return spec.build_parser(runs, version=f"qembed-worker {__version__}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        The process exit status: 0, 1 for an error in the inputs (one line on stderr), 2 for a
        usage error (argparse's convention).
    """
    args = build_parser().parse_args(argv)
    from qembed_worker.bundle.manifest import BundleError
    from qembed_worker.data.corpus import CorpusError
    from qembed_worker.data.datasets import DatasetError
    from qembed_worker.models.sources import ModelError
    from qembed_worker.qat.losses import ConfigError
    from qembed_worker.transform import TransformError

    started = time.perf_counter()
    try:
        summary = args.run(args)
    except UsageError as error:
        args.command_parser.error(str(error))
    except (
        BundleError,
        ConfigError,
        CorpusError,
        DatasetError,
        ModelError,
        TransformError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if summary is not None:
        summary["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0
