"""Calibration ranges: embed a corpus with a bundle's ONNX graph, then take per-dimension ranges."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.manifest import (
    BUNDLE_FILES,
    MODEL_FILE,
    TOKENIZER_FILE,
    BundleError,
    Calibration,
    CorpusInfo,
    check_bundle,
    created_at_now,
    created_by,
    read_manifest,
    write_bundle_manifest,
)
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


def calibrate(
    bundle_dir: Path,
    manifest: dict[str, Any],
    *,
    corpus: str = "lee",
    limit: int | None = None,
    method: str = "minmax",
    quantile: float | None = None,
    input_type: str = "document",
    batch_size: int = 32,
    cache_dir: Path | None = None,
) -> Calibration:
    """Embed a corpus with the bundle's own graph (in float64) and compute its calibration.

    Args:
        bundle_dir: Folder holding ``model.onnx`` and ``tokenizer.json``.
        manifest: The bundle's manifest (for prompts and ONNX inputs).
        corpus: ``lee`` or a corpus file (see :func:`qembed_worker.data.corpus.load_corpus`).
        limit: Use only the first ``limit`` texts.
        method: ``minmax`` or ``quantile``.
        quantile: The tail for ``quantile``.
        input_type: Which prompt to prepend (documents are what gets stored and quantized).
        batch_size: Texts per onnxruntime call.
        cache_dir: Download cache for the Lee corpus.

    Returns:
        The calibration for the manifest.
    """
    texts = load_corpus(corpus, limit=limit, cache_dir=cache_dir)
    embeddings = calibration_embeddings(
        bundle_dir, manifest, texts.texts, input_type=input_type, batch_size=batch_size
    )
    lo, hi = compute_ranges(embeddings, method, quantile)
    return Calibration(
        method=method,
        quantile=quantile if method == "quantile" else None,
        corpus=CorpusInfo(
            name=texts.name, sha256=texts.sha256, texts=len(texts.texts), input_type=input_type
        ),
        min=lo,
        max=hi,
    )


def prepare_out_dir(out: Path, *, force: bool, keep: Path | None = None) -> None:
    """Make ``out`` ready to receive a bundle.

    Raises:
        BundleError: ``out`` holds files and ``force`` is not set.
    """
    if keep is not None and out.resolve() == keep.resolve():
        return
    if out.exists() and any(out.iterdir()):
        if not force:
            raise BundleError(f"{out} is not empty; pass --force to overwrite it")
        for file in BUNDLE_FILES:
            (out / file).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def calibrate_bundle(
    *,
    bundle: Path,
    out: Path,
    force: bool = False,
    corpus: str = "lee",
    limit: int | None = None,
    method: str = "minmax",
    quantile: float | None = None,
    input_type: str = "document",
    batch_size: int = 32,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Write a copy of ``bundle`` with new calibration ranges and a new fingerprint.

    Args:
        bundle: The source bundle.
        out: Where to write (may be ``bundle`` itself).
        force: Overwrite a non-empty ``out``.
        corpus: See :func:`calibrate`.
        limit: See :func:`calibrate`.
        method: See :func:`calibrate`.
        quantile: See :func:`calibrate`.
        input_type: See :func:`calibrate`.
        batch_size: See :func:`calibrate`.
        cache_dir: See :func:`calibrate`.

    Returns:
        A summary (fingerprints, corpus size, timing).
    """
    manifest = read_manifest(bundle)
    calibration = calibrate(
        bundle,
        manifest,
        corpus=corpus,
        limit=limit,
        method=method,
        quantile=quantile,
        input_type=input_type,
        batch_size=batch_size,
        cache_dir=cache_dir,
    )
    prepare_out_dir(out, force=force, keep=bundle)
    new = dict(manifest)
    new["calibration"] = calibration.to_json()
    new["created_at"] = created_at_now()
    new["created_by"] = created_by()
    if out.resolve() == bundle.resolve():
        new = write_bundle_manifest(out, new)
    else:
        # Stage next to the target so a failure never leaves a half-written bundle behind.
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".calibrate-") as staging_name:
            staging = Path(staging_name)
            for file in (MODEL_FILE, TOKENIZER_FILE):
                shutil.copyfile(bundle / file, staging / file)
            new = write_bundle_manifest(staging, new)
            for file in BUNDLE_FILES:
                shutil.move(staging / file, out / file)
    check_bundle(out)
    return {
        "bundle": str(out),
        "from": manifest["fingerprint"],
        "fingerprint": new["fingerprint"],
        "method": calibration.method,
        "quantile": calibration.quantile,
        "corpus": calibration.corpus.name,
        "texts": calibration.corpus.texts,
    }
