"""Code transforms in ``eval-bundle``: fitted on the evaluated collection, as the service fits one.

A collection's transform is fitted on its own documents' stored int8 codes, dequantized (the
service never keeps the float vectors), with the service's sample and holdout rules; the first
stage's codes are then recomputed from those int8 codes. The judged queries are never seen by a
fit, so the NDCG@10 they give is a held-out figure.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.transform.evaluate import Transform

#: The transforms ``eval-bundle --transforms`` fits (:data:`qembed_worker.transform.fit.METHODS`).
TRANSFORMS = ("itq", "qat")
#: The name of today's code (the signs of the first dimensions) beside them.
FIRST_DIMS = "first-dims"
#: At most this many documents are fitted: the service's QEMBED_FIT_MAX_DOCUMENTS default.
FIT_MAX_DOCUMENTS = 100_000
#: The seed the service fits with by default (src/jobs/transform-fits.ts).
FIT_SEED = 1


def fit_holdout(documents: int) -> int:
    """Documents a fit holds out to evaluate itself: the service's rule, a tenth, 100 to 1,000."""
    return max(100, min(1000, round(documents / 10)))


def fit_collection(
    vectors: np.ndarray,
    methods: Sequence[str],
    bits: Sequence[int],
    *,
    model: str | None,
    seed: int = FIT_SEED,
) -> dict[str, tuple[dict[int, Transform], dict[str, Any]]]:
    """Fit each of ``methods`` on a collection's documents, every code length of ``bits``.

    Args:
        vectors: ``(n, d)`` float32: the documents' int8 codes dequantized.
        methods: ``itq`` and/or ``qat``.
        bits: Code lengths to fit.
        model: The bundle fingerprint, recorded with each transform.
        seed: The fit's seed.

    Returns:
        ``{method: ({bits: Transform}, summary)}``; the summary is the artifact's record (sample,
        training, the fit's own held-out evaluation, fingerprint).

    Raises:
        TransformError: An unknown method, or a collection too small to hold documents out.
    """
    from qembed_worker.transform.artifact import read_transform
    from qembed_worker.transform.fit import Collection, fit_transform

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    collection = Collection(vectors=x, model=model, sha256=hashlib.sha256(x.tobytes()).hexdigest())
    n = len(vectors)
    fitted = {}
    with tempfile.TemporaryDirectory(prefix="qembed-eval-transform-") as work:
        for method in methods:
            out = Path(work) / method
            manifest = fit_transform(
                collection,
                bits=tuple(bits),
                method=method,
                seed=seed,
                max_documents=min(FIT_MAX_DOCUMENTS, n),
                holdout=fit_holdout(n),
                out=out,
            )
            artifact = read_transform(out)
            transforms = {b: Transform(artifact.mean, w) for b, w in artifact.weights.items()}
            summary = {
                k: manifest.get(k) for k in ("fingerprint", "sample", "training", "evaluation")
            }
            fitted[method] = (transforms, summary)
    return fitted


def first_stage_sides(
    queries: np.ndarray,
    stored: np.ndarray,
    bits: int,
    transform: Transform | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a first stage compares, as the service computes it (``src/transform/transform.ts``).

    Args:
        queries: ``(q, d)`` float32 query embeddings.
        stored: ``(n, d)`` float32 the documents' codes are computed from: their embeddings for
            first dims (codes made at ingestion), their dequantized int8 codes for a transform
            (codes recomputed at a switch).
        bits: The code length.
        transform: ``None`` for first dims.

    Returns:
        ``(document bits, Hamming query bits, asymmetric query vector)``: the document and
        Hamming query codes as booleans (``(n, bits)``, ``(q, bits)``), and the float vector the
        asymmetric stage quantizes to 4 bits (``(q, bits)``; a transform projects without
        centring, as the service does).
    """
    if transform is None:
        return stored[:, :bits] > 0, queries[:, :bits] > 0, queries[:, :bits]
    from qembed_worker.transform.codes import transform_bits

    w = np.asarray(transform.weights, dtype=np.float32)
    if w.shape[0] != bits:
        raise ValueError(f"a {w.shape[0]}-bit transform for a {bits}-bit first stage")
    return (
        transform_bits(stored, transform.mean, w),
        transform_bits(queries, transform.mean, w),
        np.asarray(queries, dtype=np.float32) @ w.T,
    )
