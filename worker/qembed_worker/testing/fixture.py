"""The tiny random-weight bundle that the service's tests load (test/fixtures/tiny-bundle)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from qembed_worker.bundle.manifest import sha256_file
from qembed_worker.models.sources import (
    MINILM_ALIAS,
    TINY_ALIAS,
    TINY_MODEL_ID,
    load_sentence_transformer,
    resolve_model,
    weights_file,
)
from qembed_worker.models.tiny import build_tiny_model

# Pinned so that regenerating the fixture rewrites byte-identical files.
FIXTURE_CREATED_AT_EPOCH = "1735689600"  # 2025-01-01T00:00:00Z


def write_fixture(out: Path, *, limit: int = 400, cache_dir: Path | None = None) -> dict[str, Any]:
    """Write the tiny bundle to ``out``, calibrated on the first ``limit`` Lee passages.

    Args:
        out: The bundle folder (bundle files in it are replaced).
        limit: Lee passages used for calibration.
        cache_dir: Download cache for the Lee corpus.

    Returns:
        A summary with the fingerprint and parity against sentence-transformers.
    """
    from qembed_worker.calibration.ranges import CalibrationOptions
    from qembed_worker.export.exporter import MIN_COSINE, inspect_model, parity, write_bundle
    from qembed_worker.models.sources import ModelError

    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = previous or FIXTURE_CREATED_AT_EPOCH
    try:
        with tempfile.TemporaryDirectory(prefix="qembed-tiny-") as work:
            folder = build_tiny_model(Path(work), resolve_model(MINILM_ALIAS).path)
            model = load_sentence_transformer(folder)
            spec = inspect_model(model)
            source = {
                "model": TINY_MODEL_ID,
                "package": None,
                "weights_sha256": sha256_file(weights_file(folder)),
            }

            manifest, timings, fused = write_bundle(
                model,
                folder,
                out,
                name=TINY_ALIAS,
                source=source,
                spec=spec,
                opset=18,
                calibration=CalibrationOptions(limit=limit, cache_dir=cache_dir),
                force=True,
            )
            cosines = parity(model, out, manifest, ["a", "hello world", "Grüße 東京 🚀" * 40])
    finally:
        if previous is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
    if min(cosines.values()) < MIN_COSINE:
        raise ModelError(f"fixture graph disagrees with sentence-transformers: {cosines}")
    return {
        "bundle": str(out),
        "fingerprint": manifest["fingerprint"],
        "bytes": {path.name: path.stat().st_size for path in sorted(out.iterdir())},
        "smoke_parity_min_cosine": cosines,
        "fused_operators": fused,
        **timings,
    }
