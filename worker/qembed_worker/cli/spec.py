"""The argparse parser of the command line, built from its declaration in ``commands.toml``.

``commands.toml`` says what the command line is (every command, option, default and help); the
``cli`` modules say what each command does. A command declared without a ``run`` function, or
a ``run`` function without a declared command, is an error at start.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qembed_worker.cli.options import (
    Formatter,
    Run,
    comma_separated,
    fraction,
    positive_int,
)

SPEC = Path(__file__).with_name("commands.toml")

TYPES: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "path": Path,
    "positive_int": positive_int,
    "fraction": fraction,
    "comma_separated_str": comma_separated(str),
    "comma_separated_float": comma_separated(float),
    "comma_separated_int": comma_separated(int),
}

ACTIONS: dict[str, Any] = {
    "store": "store",
    "store_true": "store_true",
    "store_false": "store_false",
    "append": "append",
    "switch": argparse.BooleanOptionalAction,
}


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    """The parsed ``commands.toml``."""
    with path.open("rb") as file:
        return tomllib.load(file)


def _add_option(target: Any, option: Mapping[str, Any]) -> None:
    kwargs: dict[str, Any] = {"help": option["help"]}
    action = option.get("action", "store")
    if action not in ACTIONS:
        raise ValueError(f"{option['flags']}: unknown action {action!r}")
    kwargs["action"] = ACTIONS[action]
    if action == "switch":
        kwargs["default"] = True
    if "dest" in option:
        kwargs["dest"] = option["dest"]
    if action in ("store", "append"):
        kwargs["type"] = TYPES[option.get("type", "str")]
        if "default" in option:
            default = option["default"]
            kwargs["default"] = tuple(default) if isinstance(default, list) and default else default
            if kwargs["type"] is Path and isinstance(default, str):
                kwargs["default"] = Path(default)
        for key in ("choices", "metavar"):
            if key in option:
                kwargs[key] = option[key]
        if option.get("required"):
            kwargs["required"] = True
    target.add_argument(*option["flags"], **kwargs)


def build_parser(runs: Mapping[str, Run], version: str, spec: dict[str, Any] | None = None):
    """The parser of every declared command, each with its ``run`` function as a default.

    Args:
        runs: ``run(args)`` of each command, by command name.
        version: What ``--version`` prints.
        spec: The declaration (default: ``commands.toml``).

    Raises:
        ValueError: A declared command has no ``run`` function, or the other way round.
    """
    spec = spec or load_spec()
    program = spec["program"]
    parser = argparse.ArgumentParser(
        prog=program["prog"], description=program["description"], formatter_class=Formatter
    )
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    declared = [command["name"] for command in spec["command"]]
    if sorted(declared) != sorted(runs):
        raise ValueError(
            f"declared commands {sorted(declared)} differ from implemented {sorted(runs)}"
        )
    for command in spec["command"]:
        sub = commands.add_parser(
            command["name"],
            help=command["help"],
            description=command["description"],
            formatter_class=Formatter,
        )
        sub.set_defaults(run=runs[command["name"]], command_parser=sub)
        groups: dict[str, Any] = {}
        for option in command.get("option", []):
            title = option.get("group")
            target = sub
            if title is not None:
                target = groups.get(title) or groups.setdefault(
                    title, sub.add_argument_group(title)
                )
            _add_option(target, option)
        if command.get("calibration_options"):
            group = sub.add_argument_group("calibration")
            for option in spec["calibration_option"]:
                _add_option(group, option)
    return parser
