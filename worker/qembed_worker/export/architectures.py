"""Which sentence-transformers folders the exporter can turn into a bundle, checked from files.

:func:`check_folder` reads ``modules.json`` and the transformer's ``config.json`` only, before
any model code runs or any output is written, and names the module or the architecture it
cannot export. What needs the loaded model (pooling mode, Dense layers, prompts) is checked
next by :func:`qembed_worker.export.exporter.inspect_model`, still before the output folder is
touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from qembed_worker.models.sources import ModelError

# Hugging Face ``model_type`` values whose export has been checked against
# sentence-transformers (parity >= 0.9999): BERT (all-MiniLM-L6-v2, the tiny fixture model) and
# MPNet (all-mpnet-base-v2, and a tiny random MPNet in the tests). docs/model-bundle.md lists
# them; add one only with a parity test.
ARCHITECTURES = ("bert", "mpnet")
# The sentence-transformers modules a bundle graph can hold, by class name. modules.json names
# them by import path, which moved between sentence-transformers versions
# (sentence_transformers.models.Pooling, ...sentence_transformer.modules.pooling.Pooling).
MODULES = ("Transformer", "Pooling", "Dense", "Normalize")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {path}: {error}") from error


def check_folder(folder: Path) -> str:
    """Refuse a model folder whose modules or architecture the exporter does not support.

    Args:
        folder: A sentence-transformers model folder (with ``modules.json``).

    Returns:
        The transformer's ``model_type`` (``bert``, ``mpnet``).

    Raises:
        ModelError: Naming the unsupported module or architecture.
    """
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise ModelError(f"{folder / 'modules.json'} lists no modules")
    for entry in modules:
        kind = str(entry.get("type", "")) if isinstance(entry, dict) else ""
        package, _, name = kind.rpartition(".")
        if not package.startswith("sentence_transformers") or name not in MODULES:
            raise ModelError(
                f"module {kind or entry!r} cannot be exported: a bundle holds only "
                f"sentence-transformers' {', '.join(MODULES)} modules"
            )
    first = modules[0]
    if not str(first.get("type", "")).endswith(".Transformer"):
        raise ModelError("the model must start with a Transformer module")
    config = _read_json(folder / str(first.get("path", "")) / "config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in ARCHITECTURES:
        architectures = config.get("architectures") if isinstance(config, dict) else None
        raise ModelError(
            f"architecture {model_type!r} ({', '.join(architectures or []) or 'unnamed'}) "
            f"cannot be exported; supported: {', '.join(ARCHITECTURES)}"
        )
    return str(model_type)
