"""The JSON Schemas the worker shares with the service: ``contracts/`` at the repository root.

``contracts/manifest.schema.json`` is the model bundle's manifest,
``contracts/train-job-spec.schema.json`` a training job and ``contracts/fit-job-spec.schema.json``
a collection's transform fit as the service queues them. Both sides
validate against the same files, so a field is declared once. The folder sits beside the
``worker/`` folder the package runs from (the worker image copies it there too);
``QEMBED_CONTRACTS_DIR`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

MANIFEST = "manifest.schema.json"
TRAIN_JOB_SPEC = "train-job-spec.schema.json"
FIT_JOB_SPEC = "fit-job-spec.schema.json"


class ContractError(ValueError):
    """A value does not follow its contract; the message is the schema's."""


def contracts_dir() -> Path:
    """The ``contracts/`` folder (``QEMBED_CONTRACTS_DIR``, else the repository's)."""
    configured = os.environ.get("QEMBED_CONTRACTS_DIR")
    if configured:
        return Path(configured)
    # The one place the package looks outside itself: the contracts are the repository's, not
    # the worker's, because the service reads the same files (tests/test_architecture.py).
    return Path(__file__).resolve().parents[2] / "contracts"


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft7Validator

    path = contracts_dir() / name
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ContractError(
            f"cannot read the contract {path}: {error} (set QEMBED_CONTRACTS_DIR to the "
            "repository's contracts/ folder)"
        ) from error
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def validate(name: str, value: Any) -> None:
    """Check ``value`` against the contract ``name`` (e.g. :data:`MANIFEST`).

    Raises:
        ContractError: ``at <field path>: <the schema's message>`` for the most relevant
            violation (jsonschema's ``best_match``).
    """
    from jsonschema.exceptions import best_match

    error = best_match(_validator(name).iter_errors(value))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "the top level"
    raise ContractError(f"does not follow contracts/{name} at {where}: {error.message}")
