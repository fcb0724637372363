"""Shared fixtures: paths of the committed fixtures and models built once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures"
TINY_BUNDLE = FIXTURES / "tiny-bundle"
GOLDEN = FIXTURES / "quantization-golden.json"
PARITY_TEXTS = FIXTURES / "parity-texts.json"


@pytest.fixture(scope="session")
def parity_texts() -> list[str]:
    return json.loads(PARITY_TEXTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qembed_worker.models.sources import MINILM_ALIAS, resolve_model
    from qembed_worker.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), resolve_model(MINILM_ALIAS).path)


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 exported once, calibrated on the first 64 Lee passages for speed."""
    from qembed_worker.calibration.ranges import CalibrationOptions
    from qembed_worker.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("minilm") / "bundle"
    export_bundle(model="all-minilm-l6-v2", out=out, calibration=CalibrationOptions(limit=64))
    return out
