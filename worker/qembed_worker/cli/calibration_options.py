"""The calibration options shared by every command that calibrates a bundle.

Declared once in ``commands.toml`` (``calibration_option``), read here into the one
:class:`~qembed_worker.calibration.ranges.CalibrationOptions` that every such command takes.
"""

from __future__ import annotations

import argparse

from qembed_worker.calibration.ranges import CalibrationOptions
from qembed_worker.cli.options import UsageError, keywords


def calibration_options(args: argparse.Namespace) -> CalibrationOptions:
    """The calibration options of a command.

    Raises:
        UsageError: The options contradict each other.
    """
    options = CalibrationOptions(**keywords(args, CalibrationOptions))
    problems = options.problems()
    if problems:
        raise UsageError("; ".join(problems))
    return options
