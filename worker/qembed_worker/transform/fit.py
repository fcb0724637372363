"""``fit-transform``: read a collection's codes, fit ITQ (and QAT), evaluate, write the artifact.

Every input is checked before anything is fitted or written. The documents are split with the
seed: ``holdout`` of them become the evaluation's queries and are never fitted on; of the rest, at
most ``max_documents`` (a seeded subsample) are fitted and searched by those queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qembed_worker.transform import TransformError
from qembed_worker.transform.artifact import write_transform
from qembed_worker.transform.codes import first_dims_transform
from qembed_worker.transform.evaluate import (
    EXACT_TOP,
    FIRST_STAGE_K,
    Transform,
    exact_neighbours,
    first_stage_recall,
)
from qembed_worker.transform.itq import ITQ_ITERATIONS, fit_itq, principal_axes
from qembed_worker.transform.qat import QatConfig, train_qat

METHODS = ("itq", "qat")
Progress = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class Collection:
    """The documents to fit, as the service scores them.

    Attributes:
        vectors: ``(n, d)`` float32 (dequantized int8 codes, or given vectors).
        model: The bundle fingerprint, when a bundle was given.
        sha256: SHA-256 of the input file.
    """

    vectors: np.ndarray
    model: str | None
    sha256: str


def load_collection(int8: Path | None, vectors: Path | None, bundle: Path | None) -> Collection:
    """Read ``--int8`` codes (dequantized with ``bundle``'s ranges) or ``--vectors``.

    Raises:
        TransformError: Not exactly one input, ``--int8`` without a bundle, a missing or
            unreadable file, a wrong dtype or shape, no documents, or a bundle of another
            dimension.
    """
    from qembed_worker.bundle.manifest import read_manifest, sha256_file
    from qembed_worker.quant.codes import dequantize_int8

    if (int8 is None) == (vectors is None):
        raise TransformError("give exactly one of --int8 (with --bundle) and --vectors")
    if int8 is not None and bundle is None:
        raise TransformError("--int8 needs --bundle: its calibration ranges dequantize the codes")
    path = int8 if int8 is not None else vectors
    assert path is not None
    if not path.is_file():
        raise TransformError(f"{path}: no such file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise TransformError(f"{path}: not a .npy array ({error})") from error
    expected = np.int8 if int8 is not None else np.float32
    if array.dtype != expected or array.ndim != 2:
        raise TransformError(
            f"{path}: {array.dtype} array of shape {array.shape}; expected 2-d "
            f"{np.dtype(expected).name} (documents x dimensions)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise TransformError(f"{path}: empty input, no documents to fit")
    model = None
    if bundle is not None:
        manifest = read_manifest(bundle)
        if int(manifest["dimension"]) != array.shape[1]:
            raise TransformError(
                f"{path} has {array.shape[1]} dimensions but bundle {bundle} has "
                f"{manifest['dimension']}"
            )
        model = manifest["fingerprint"]
        if int8 is not None:
            calibration = manifest["calibration"]
            array = dequantize_int8(np.asarray(array), calibration["min"], calibration["max"])
    x = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(x).all():
        raise TransformError(f"{path}: holds values that are not finite")
    return Collection(vectors=x, model=model, sha256=sha256_file(path))


def check_lengths(bits: tuple[int, ...], dimension: int) -> list[int]:
    """The code lengths asked for, longest first.

    Raises:
        TransformError: None given, or one that is not a positive multiple of 8 up to ``d``.
    """
    if not bits:
        raise TransformError("--bits: give at least one code length")
    for b in bits:
        if b <= 0 or b % 8 or b > dimension:
            raise TransformError(
                f"--bits {b}: a code length is a positive multiple of 8 of at most the "
                f"dimension ({dimension})"
            )
    return sorted(set(bits), reverse=True)


def split(n: int, holdout: int, max_documents: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(queries, documents)`` indices: ``holdout`` queries, then the fitted documents.

    Raises:
        TransformError: ``holdout`` leaves fewer than ``FIRST_STAGE_K + 1`` documents to fit.
    """
    if holdout < 1 or max_documents < 1:
        raise TransformError("--holdout and --max-documents must be at least 1")
    if n - holdout <= FIRST_STAGE_K:
        raise TransformError(
            f"--holdout {holdout} leaves {max(n - holdout, 0)} of the {n} documents to fit; "
            f"the evaluation needs more than {FIRST_STAGE_K}: lower --holdout"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:holdout]), np.sort(order[holdout : holdout + max_documents])


def fit_transform(
    collection: Collection,
    *,
    bits: tuple[int, ...],
    method: str,
    seed: int,
    max_documents: int,
    holdout: int,
    out: Path,
    steps: int = QatConfig.steps,
    force: bool = False,
    threads: int = 1,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Fit, evaluate and write a transform; returns ``transform.json`` as written.

    Args:
        collection: The documents (:func:`load_collection`).
        bits: Code lengths to fit.
        method: ``itq`` or ``qat`` (which also fits ITQ: its start and baseline).
        seed: Seeds the split, ITQ's starting rotation and QAT's batches.
        max_documents: At most this many documents are fitted (a seeded subsample).
        holdout: Documents taken out of the fit and searched as queries by the evaluation.
        out: The transform folder to write.
        steps: QAT optimizer steps.
        force: Replace a non-empty ``out``.
        threads: torch threads (the fit is deterministic given the seed and this).
        progress: ``progress(step, total, loss)`` during QAT (the job runner's progress).
        cancelled: Polled between stages and steps; when it returns true the fit raises
            :class:`~qembed_worker.jobs.queue.JobCancelledError` and writes nothing.

    Raises:
        TransformError: Inputs the fit cannot use (before anything is written).
        JobCancelledError: ``cancelled`` said so.
    """
    from threadpoolctl import threadpool_limits

    from qembed_worker.jobs.queue import JobCancelledError

    if method not in METHODS:
        raise TransformError(f"--method {method!r}: use one of {METHODS}")
    if steps < 1:
        raise TransformError("--steps must be at least 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise TransformError(f"{out} is not empty; pass --force to overwrite it")
    x = collection.vectors
    lengths = check_lengths(tuple(bits), x.shape[1])
    query_ids, document_ids = split(len(x), holdout, max_documents, seed)

    def check() -> None:
        if cancelled is not None and cancelled():
            raise JobCancelledError("the transform fit was cancelled")

    torch.set_num_threads(threads)
    # numpy's BLAS (PCA, the SVDs) would otherwise take every core, beside torch's threads.
    with threadpool_limits(limits=threads):
        fitted = _fit(x, lengths, query_ids, document_ids, method, seed, steps, progress, check)
    return write_transform(
        out,
        method=method,
        model=collection.model,
        mean=fitted["mean"],
        weights=fitted["weights"],
        sample={
            "documents": len(document_ids),
            "holdout": len(query_ids),
            "seed": seed,
            "sha256": collection.sha256,
        },
        training={**fitted["training"], "threads": threads},
        evaluation=fitted["evaluation"],
        force=force,
    )


def _fit(
    x: np.ndarray,
    lengths: list[int],
    query_ids: np.ndarray,
    document_ids: np.ndarray,
    method: str,
    seed: int,
    steps: int,
    progress: Progress | None,
    check: Callable[[], None],
) -> dict[str, Any]:
    """Fit ITQ (and QAT) on the documents and evaluate on the held-out queries."""
    from qembed_worker.bundle.publish import announce

    started = time.perf_counter()
    announce(f"fitting ITQ on {len(document_ids)} documents ({len(query_ids)} held out)")
    documents, queries = x[document_ids], x[query_ids]
    mean = documents.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = documents - mean
    axes = principal_axes(centred)
    itq: dict[int, np.ndarray] = {}
    itq_loss = [0.0, 0.0]
    for b in lengths:
        itq[b], first, last = fit_itq(centred, axes, b, seed, check=check)
        itq_loss = [itq_loss[0] + first, itq_loss[1] + last]
    del centred
    itq_seconds = time.perf_counter() - started
    transforms = {"itq": itq}
    if method == "qat":
        announce(f"ITQ took {itq_seconds:.1f} s; training QAT")
        config = QatConfig(steps=steps)
        transforms["qat"], training = train_qat(
            documents, mean, itq, config, seed, progress=progress, check=check
        )
        training = {"method": "qat", **training, "itq_seconds": round(itq_seconds, 1)}
    else:
        training = {
            "method": "itq",
            "steps": ITQ_ITERATIONS,
            "seconds": round(itq_seconds, 1),
            "loss_start": round(itq_loss[0], 6),
            "loss_end": round(itq_loss[1], 6),
        }
    check()
    announce(f"evaluating on {len(query_ids)} held-out queries")
    truth = exact_neighbours(queries, documents, EXACT_TOP)
    rows = []
    for b in lengths:
        candidates = {"first-dims": Transform(*first_dims_transform(x.shape[1], b))}
        candidates.update({name: Transform(mean, w[b]) for name, w in transforms.items()})
        for name, transform in candidates.items():
            check()
            recall = first_stage_recall(queries, documents, truth, transform, FIRST_STAGE_K)
            rows.append({"bits": b, "transform": name, **recall})
    evaluation = {"queries": len(queries), "k": FIRST_STAGE_K, "top": EXACT_TOP, "rows": rows}
    training["total_seconds"] = round(time.perf_counter() - started, 1)
    weights = transforms[method]
    return {"mean": mean, "weights": weights, "training": training, "evaluation": evaluation}


def format_table(manifest: dict[str, Any]) -> str:
    """The evaluation as a text table: recall@k, Hamming / asymmetric, per length and transform."""
    evaluation = manifest["evaluation"]
    lines = [
        f"recall@{evaluation['k']} of the exact top-{evaluation['top']}, "
        f"{evaluation['queries']} held-out queries (hamming / asymmetric)"
    ]
    for row in evaluation["rows"]:
        lines.append(
            f"  {row['bits']:>4} bits  {row['transform']:<10} "
            f"{row['hamming']:.3f} / {row['asymmetric']:.3f}"
        )
    return "\n".join(lines)
