"""Calibration ranges: embed a corpus with a bundle's ONNX graph, then take per-dimension ranges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.manifest import (
    MODEL_FILE,
    TOKENIZER_FILE,
    Calibration,
    CorpusInfo,
    read_manifest,
)
from qembed_worker.bundle.publish import publish
from qembed_worker.data.corpus import load_corpus
from qembed_worker.inference.encoder import OnnxEncoder

METHODS = ("minmax", "quantile")


def compute_ranges(
    embeddings: np.ndarray, method: str = "minmax", quantile: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Compute per-dimension float32 ranges with ``max > min`` strictly.

    The statistics are taken in float64 and rounded to the nearest float32 once, at the end, so
    float64 embeddings from :func:`calibration_embeddings` give the same ranges on every machine.

    Args:
        embeddings: Array of shape ``(n, dimension)`` (float64 preferably).
        method: ``minmax`` (min and max of each dimension) or ``quantile`` (the ``q`` and
            ``1 - q`` quantiles, linear interpolation).
        quantile: The tail ``q`` for ``quantile``, with ``0 < q < 0.5``.

    Returns:
        ``(min, max)``, float32 arrays; where they would be equal, ``max`` is widened to the next
        float32 so that every range is non-empty.

    Raises:
        ValueError: Unknown method, bad quantile, or no embeddings.
    """
    data = np.asarray(embeddings, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"need a non-empty (n, dimension) array, got shape {data.shape}")
    if method == "minmax":
        lo = data.min(axis=0)
        hi = data.max(axis=0)
    elif method == "quantile":
        if quantile is None or not 0 < quantile < 0.5:
            raise ValueError(f"quantile must be in (0, 0.5), got {quantile}")
        bounds = np.quantile(data, [quantile, 1 - quantile], axis=0)
        lo, hi = bounds[0], bounds[1]
    else:
        raise ValueError(f"unknown calibration method {method!r}; use one of {METHODS}")
    lo = np.asarray(lo, dtype=np.float32)
    hi = np.asarray(hi, dtype=np.float32)
    hi = np.where(hi > lo, hi, np.nextafter(lo, np.float32(np.inf))).astype(np.float32)
    return lo, hi


def calibration_embeddings(
    bundle_dir: Path,
    manifest: dict[str, Any],
    texts: Sequence[str],
    *,
    input_type: str = "document",
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """Embed calibration texts with the bundle's graph evaluated in float64.

    Calibration ranges are part of a bundle's fingerprint, so they must come out the same on
    every machine: onnxruntime's float32 kernels sum in an order that depends on the
    instruction set, the float64 evaluation does not (to within about 1e-15 relative; see
    :mod:`qembed_worker.inference.float64_graph`).

    Returns:
        float64 embeddings of shape ``(len(texts), dimension)``.
    """
    encoder = OnnxEncoder(bundle_dir, manifest["prompts"], manifest["onnx"]["inputs"], float64=True)
    return encoder.encode(texts, input_type=input_type, batch_size=batch_size, progress=progress)


@dataclass(frozen=True)
class CalibrationOptions:
    """How a bundle's int8 ranges are computed: the one options object of every command.

    Attributes:
        corpus: ``lee`` or a corpus file (see :func:`qembed_worker.data.corpus.load_corpus`).
        limit: Use only the first ``limit`` texts (all when ``None``).
        method: ``minmax`` or ``quantile``.
        quantile: The tail ``q`` for ``quantile`` (``0 < q < 0.5``), ``None`` for ``minmax``.
        input_type: Which prompt to prepend (documents are what gets stored and quantized).
        batch_size: Texts per graph call.
        cache_dir: Download cache for the Lee corpus.
    """

    corpus: str = "lee"
    limit: int | None = None
    method: str = "minmax"
    quantile: float | None = None
    input_type: str = "document"
    batch_size: int = 32
    cache_dir: Path | None = None

    def problems(self) -> list[str]:
        """What contradicts itself in these options (empty when they are usable)."""
        found = []
        if self.method not in METHODS:
            found.append(f"unknown calibration method {self.method!r} (minmax or quantile)")
        if self.method == "quantile":
            if self.quantile is None:
                found.append("--method quantile needs --quantile q (e.g. 0.001)")
            elif not 0 < self.quantile < 0.5:
                found.append("--quantile must be between 0 and 0.5 (exclusive)")
        elif self.quantile is not None:
            found.append("--quantile only applies to --method quantile")
        if self.limit is not None and self.limit <= 0:
            found.append("--limit must be positive")
        if self.batch_size <= 0:
            found.append("--batch-size must be positive")
        return found


def calibrate(
    bundle_dir: Path,
    manifest: dict[str, Any],
    options: CalibrationOptions = CalibrationOptions(),
    *,
    progress: bool = True,
) -> Calibration:
    """Embed a corpus with the bundle's own graph (in float64) and compute its calibration.

    Args:
        bundle_dir: Folder holding ``model.onnx`` and ``tokenizer.json``.
        manifest: The bundle's manifest (for prompts and ONNX inputs).
        options: Corpus, method and the rest.
        progress: Show a progress bar while embedding.

    Returns:
        The calibration for the manifest.
    """
    texts = load_corpus(options.corpus, limit=options.limit, cache_dir=options.cache_dir)
    embeddings = calibration_embeddings(
        bundle_dir,
        manifest,
        texts.texts,
        input_type=options.input_type,
        batch_size=options.batch_size,
        progress=progress,
    )
    lo, hi = compute_ranges(embeddings, options.method, options.quantile)
    return Calibration(
        method=options.method,
        quantile=options.quantile if options.method == "quantile" else None,
        corpus=CorpusInfo(
            name=texts.name,
            sha256=texts.sha256,
            texts=len(texts.texts),
            input_type=options.input_type,
        ),
        min=lo,
        max=hi,
    )


def calibrate_bundle(
    *,
    bundle: Path,
    out: Path,
    options: CalibrationOptions = CalibrationOptions(),
    force: bool = False,
) -> dict[str, Any]:
    """Write a copy of ``bundle`` with new calibration ranges and a new fingerprint.

    Args:
        bundle: The source bundle.
        out: Where to write (may be ``bundle`` itself).
        options: See :func:`calibrate`.
        force: Overwrite a non-empty ``out``.

    Returns:
        A summary (fingerprints, corpus size, timing).
    """
    manifest = read_manifest(bundle)
    calibration = calibrate(bundle, manifest, options)
    with publish(out, force=force, source=bundle) as staging:
        staging.copy_from(bundle, MODEL_FILE, TOKENIZER_FILE)
        new = staging.write_manifest({**manifest, "calibration": calibration.to_json()})
    return {
        "bundle": str(out),
        "from": manifest["fingerprint"],
        "fingerprint": new["fingerprint"],
        "method": calibration.method,
        "quantile": calibration.quantile,
        "corpus": calibration.corpus.name,
        "texts": calibration.corpus.texts,
    }
