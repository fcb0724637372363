"""JSON helpers shared by the bundle and fixture writers.

Float32 values are written as the Python ``float`` of an ``np.float32``: the decimal text reads
back, in Python and in JavaScript, as a double that is exactly the float32 value, so both
languages recover bit-identical float32 numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def f32_list(values: Iterable[float] | np.ndarray) -> list[float]:
    """Return the values as Python floats holding exact float32 values.

    Args:
        values: Numbers of any float type; each is rounded to float32 first.

    Returns:
        A list of Python floats, one per value, each exactly representable in float32.
    """
    array = np.asarray(values, dtype=np.float32).ravel()
    return [float(v) for v in array]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def dumps(value: Any, indent: int = 2) -> str:
    """Serialize to JSON with objects indented and lists of scalars kept on one line.

    Long vectors stay one line each, which keeps fixture diffs readable without turning a
    384-dimension vector into 384 lines.

    Args:
        value: A JSON-compatible value (dicts, lists, str, int, float, bool, None).
        indent: Spaces per nesting level.

    Returns:
        The JSON text, ending with a newline.
    """

    def render(node: Any, level: int) -> str:
        pad = " " * (indent * (level + 1))
        end = " " * (indent * level)
        if isinstance(node, dict):
            if not node:
                return "{}"
            items = [
                f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {render(v, level + 1)}"
                for k, v in node.items()
            ]
            return "{\n" + ",\n".join(items) + "\n" + end + "}"
        if isinstance(node, list | tuple):
            if all(_is_scalar(item) for item in node):
                return json.dumps(list(node), ensure_ascii=False, allow_nan=False)
            items = [f"{pad}{render(item, level + 1)}" for item in node]
            return "[\n" + ",\n".join(items) + "\n" + end + "]"
        return json.dumps(node, ensure_ascii=False, allow_nan=False)

    return render(value, 0) + "\n"


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` to ``path`` as UTF-8 JSON in the layout of :func:`dumps`.

    Args:
        path: Destination file; its parent folder must exist.
        value: A JSON-compatible value.
    """
    path.write_text(dumps(value), encoding="utf-8")


def read_json(path: Path) -> Any:
    """Read a UTF-8 JSON file.

    Args:
        path: The file to read.

    Returns:
        The decoded value.
    """
    return json.loads(path.read_text(encoding="utf-8"))
