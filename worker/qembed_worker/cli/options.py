"""What the command line's pieces share: the help format, option types, usage errors."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

Run = Callable[[argparse.Namespace], dict[str, Any] | None]


class UsageError(Exception):
    """Options that parse but contradict each other: reported like argparse's own errors."""


class Formatter(argparse.HelpFormatter):
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


def positive_int(text: str) -> int:
    """An argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def comma_separated(kind: type) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: a comma-separated list of ``kind`` values, as a tuple."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def skipped(args: argparse.Namespace) -> dict[str, Any] | None:
    """The summary of a command that ``--if-missing`` lets skip, or ``None`` to run it."""
    if args.if_missing and (args.out / "manifest.json").is_file():
        return {"bundle": str(args.out), "skipped": "a bundle is already there (--if-missing)"}
    return None


def keywords(args: argparse.Namespace, callee: Callable[..., Any], **given: Any) -> dict[str, Any]:
    """The keyword arguments of ``callee`` that parsed options of the same name supply.

    ``commands.toml`` names each option's destination after the parameter it feeds, so a command
    passes its options on by name; ``given`` adds or replaces the ones that are computed.
    """
    names = inspect.signature(callee).parameters
    found = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return {**found, **given}
