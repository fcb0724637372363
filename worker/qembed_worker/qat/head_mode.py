"""``train --mode head``: a d x d head trained on the frozen encoder's cached embeddings.

The source bundle's float32 embeddings of the training texts are computed once with its own
graph and cached; a head (identity at start) is trained on them under the quantization-aware
loss, with int8 ranges recomputed from the calibration corpus as it trains, then appended to
the ONNX graph (:func:`qembed_worker.qat.head.bake_head`). Minutes on a CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qembed_worker.bundle.manifest import COMPACT_CODE_BITS, MODEL_FILE, BundleError
from qembed_worker.calibration.ranges import CalibrationOptions, compute_ranges
from qembed_worker.data.corpus import load_corpus
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.qat.config import TrainConfig
from qembed_worker.qat.data import Prepared, embed_training_data
from qembed_worker.qat.head import Head, HeadArtifact, bake_head, principal_axes, save_head
from qembed_worker.qat.loop import LoopResult, remove_checkpoints, run_loop
from qembed_worker.qat.losses import QatLoss
from qembed_worker.qat.publishing import (
    cli_summary,
    code_lengths_field,
    start_run,
    training_summary,
    write_new_bundle,
)
from qembed_worker.qat.validation import head_validation
from qembed_worker.quant.codes import Int8Ranges, code_bits


def calibration_embeddings_for(
    plan: CalibrationOptions, bundle: Path, manifest: dict[str, Any], config: TrainConfig
) -> np.ndarray:
    """The bundle's embeddings of the calibration corpus the plan names."""
    corpus = load_corpus(plan.corpus, limit=plan.limit, cache_dir=plan.cache_dir)
    return bundle_embeddings(
        bundle,
        corpus.texts,
        plan.input_type,
        cache_dir=config.cache_dir,
        manifest=manifest,
        label="calibration",
        progress=config.progress,
    )


@dataclass
class HeadFit:
    """A trained head and what was measured around it.

    Attributes:
        head: The trained head (evaluation mode).
        result: The loop result.
        before: Validation metrics of the identity head with the source bundle's ranges.
        after: Validation metrics of the trained head with its fresh ranges.
        lo: Fresh int8 minimums (the head on the calibration embeddings).
        hi: Fresh int8 maximums.
    """

    head: Head
    result: LoopResult
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    lo: np.ndarray
    hi: np.ndarray


def fit_head(
    config: TrainConfig,
    prepared: Prepared,
    calibration_embeddings: np.ndarray,
    manifest: dict[str, Any],
    plan: CalibrationOptions,
    kind: str,
) -> HeadFit:
    """Train a head on cached teacher embeddings (the core of ``--mode head``).

    Args:
        config: The run configuration (checked).
        prepared: Teacher embeddings and the train/validation split.
        calibration_embeddings: The source bundle's embeddings of the calibration corpus.
        manifest: The source bundle's manifest.
        plan: The calibration plan.
        kind: ``texts`` (distill) or ``pairs`` (mnrl).

    Returns:
        The trained head, its fresh ranges and validation metrics before and after.
    """
    dimension = int(manifest["dimension"])
    torch.manual_seed(config.seed)
    head = Head(dimension, config.head, bias=config.bias, normalize=config.normalize)
    if config.head_init == "pca":
        head.set_base(principal_axes(prepared.documents[prepared.train]))
    if config.center_init:
        mean = prepared.documents[prepared.train].mean(axis=0)
        head.set_bias(-mean)
    bundle_lo = np.asarray(manifest["calibration"]["min"], dtype=np.float32)
    bundle_hi = np.asarray(manifest["calibration"]["max"], dtype=np.float32)
    ranges = Int8Ranges(bundle_lo, bundle_hi)
    calibration_tensor = torch.from_numpy(calibration_embeddings)

    def head_ranges() -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = head(calibration_tensor).numpy()
        return compute_ranges(out, plan.method, plan.quantile)

    def refresh_ranges() -> None:
        if config.range_source() == "calibration":
            ranges.set_ranges(*head_ranges())

    refresh_ranges()
    settings = config.settings(kind)
    loss_fn = QatLoss(settings, ranges)
    lengths = sorted(
        {*COMPACT_CODE_BITS, *(code_bits(p) for p in config.precisions if code_bits(p))}
    )
    before = head_validation(head, prepared, bundle_lo, bundle_hi, lengths)

    teacher_docs = torch.from_numpy(prepared.documents)
    teacher_queries = torch.from_numpy(prepared.queries) if prepared.queries is not None else None

    teacher_crops = torch.from_numpy(prepared.crops) if prepared.crops is not None else None

    def student(batch: np.ndarray):
        index = torch.from_numpy(batch)
        if prepared.kind == "texts":
            teacher = teacher_docs[index]
            if teacher_crops is None:
                return head(teacher), teacher, None, None
            crops = teacher_crops[index]
            return head(teacher), teacher, head(crops), crops
        assert prepared.pairs is not None and teacher_queries is not None
        rows = prepared.pairs[batch]
        negatives = rows[:, 2][rows[:, 2] >= 0]
        doc_index = torch.from_numpy(np.concatenate([rows[:, 1], negatives]))
        return head(teacher_queries[torch.from_numpy(rows[:, 0])]), head(teacher_docs[doc_index])

    result = run_loop(config, prepared, head, student, loss_fn, refresh_ranges)
    final_lo, final_hi = head_ranges()
    after = head_validation(head, prepared, final_lo, final_hi, lengths)
    return HeadFit(head, result, before, after, final_lo, final_hi)


def train_head(config: TrainConfig) -> dict[str, Any]:
    """Run ``--mode head`` end to end: validate, cache, train, bake, calibrate, check.

    Returns:
        A summary for the command line (the same run summary is in the new manifest).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    manifest, plan, data = start_run(config)
    torch.manual_seed(config.seed)

    t0 = time.perf_counter()
    prepared = embed_training_data(data, config.bundle, manifest, config)
    calibration_embeddings = calibration_embeddings_for(plan, config.bundle, manifest, config)
    timings["embedding_s"] = round(time.perf_counter() - t0, 1)
    dimension = int(manifest["dimension"])
    if prepared.documents.shape[1] != dimension:
        raise BundleError(
            f"embeddings have {prepared.documents.shape[1]} dimensions, not {dimension}"
        )

    fit = fit_head(config, prepared, calibration_embeddings, manifest, plan, data.kind)
    head, result, before, after = fit.head, fit.result, fit.before, fit.after
    timings["training_s"] = result.seconds

    t0 = time.perf_counter()
    weight, bias = head.matrices()
    summary = training_summary(
        config,
        manifest,
        data,
        prepared,
        result,
        before,
        after,
        timings,
        extra={
            "head": {
                "kind": config.head,
                "bias": config.bias,
                "normalize": config.normalize,
                "orthogonality_error": float(np.abs(weight @ weight.T - np.eye(dimension)).max()),
                "distance_from_identity": float(np.abs(weight - np.eye(dimension)).max()),
                "bias_norm": float(np.linalg.norm(bias)) if bias is not None else None,
            }
        },
    )

    def write_graph(staging: Path) -> None:
        bake_head(
            config.bundle / MODEL_FILE,
            staging / MODEL_FILE,
            weight,
            bias,
            normalize=config.normalize,
        )

    new_manifest = write_new_bundle(
        config, manifest, plan, write_graph, summary, started, timings, t0
    )
    if config.save_head is not None:
        save_head(
            config.save_head,
            HeadArtifact(
                weight=weight,
                bias=bias,
                source_fingerprint=manifest["fingerprint"],
                normalize=config.normalize,
                name=new_manifest["name"],
                calibration=plan,
                code_lengths=code_lengths_field(config, dimension),
                training=new_manifest["training"],
            ),
        )
    remove_checkpoints(config)
    return cli_summary(config, manifest, new_manifest, result, before, after)
