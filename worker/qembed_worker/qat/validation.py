"""Label-free validation: how well each precision's ranking keeps the teacher's top-10.

Held-out texts (or queries) are ranked against the whole training corpus by the student's
float32, int8 and binary codes, as the service scores them, and compared with the teacher's
float32 top-10 (fidelity@10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from qembed_worker.bundle.manifest import COMPACT_CODE_BITS
from qembed_worker.eval.evaluate import fidelity, top_k
from qembed_worker.qat.data import Prepared
from qembed_worker.qat.head import Head
from qembed_worker.quant.codes import dequantize_int8, int8_codes, signs


def validation_metrics(
    student_queries: np.ndarray,
    student_docs: np.ndarray,
    teacher_queries: np.ndarray,
    teacher_docs: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    positives: np.ndarray | None = None,
    code_lengths: Sequence[int] = COMPACT_CODE_BITS,
) -> dict[str, Any]:
    """Fidelity@10 of each precision's ranking against the teacher's float32 top-10.

    Modes as the service scores them: ``float32``, ``int8`` (float32 query against int8
    documents under ``lo``/``hi``), ``binary`` (Hamming) and ``binary@N`` (Hamming over the
    first ``N`` dimensions' signs, for each of ``code_lengths`` shorter than the embedding).

    Args:
        student_queries: ``(q, d)`` student query embeddings.
        student_docs: ``(n, d)`` student document embeddings.
        teacher_queries: ``(q, d)`` teacher query embeddings.
        teacher_docs: ``(n, d)`` teacher document embeddings.
        lo: int8 calibration minimums of the student.
        hi: int8 calibration maximums of the student.
        exclude: For each query, a document index to leave out (the query itself), or None.
        positives: For each query, its positive document (pairs), to report hit@10.
        code_lengths: Compact code lengths to report (those shorter than the embedding).

    Returns:
        ``{"queries": q, "fidelity@10": {mode: value}, "hit@10": {mode: value}?}``.
    """

    def mask(scores: np.ndarray) -> np.ndarray:
        if exclude is not None:
            scores[np.arange(len(exclude)), exclude] = -np.inf
        return scores

    q64 = student_queries.astype(np.float64)
    reference = top_k(
        mask(teacher_queries.astype(np.float64) @ teacher_docs.astype(np.float64).T), 10
    )
    dequantized = dequantize_int8(int8_codes(student_docs, lo, hi), lo, hi).astype(np.float64)

    def hamming_top(bits: int) -> np.ndarray:
        # ±1 dot products are integers below 2**24: exact in float32, ordered like -Hamming.
        dot = signs(student_queries[:, :bits]).astype(np.float32) @ (
            signs(student_docs[:, :bits]).astype(np.float32).T
        )
        return top_k(mask(dot.astype(np.float64)), 10)

    dimension = student_docs.shape[1]
    rankings = {
        "float32": top_k(mask(q64 @ student_docs.astype(np.float64).T), 10),
        "int8": top_k(mask(q64 @ dequantized.T), 10),
        "binary": hamming_top(dimension),
        **{
            f"binary@{bits}": hamming_top(bits)
            for bits in sorted(set(code_lengths), reverse=True)
            if bits < dimension
        },
    }
    result: dict[str, Any] = {
        "queries": len(student_queries),
        "fidelity@10": {m: round(fidelity(r, reference), 4) for m, r in rankings.items()},
    }
    if positives is not None:
        result["hit@10"] = {
            m: round(float(np.mean([p in row for p, row in zip(positives, r, strict=True)])), 4)
            for m, r in rankings.items()
        }
    return result


def head_validation(
    head: Head,
    prepared: Prepared,
    lo: np.ndarray,
    hi: np.ndarray,
    code_lengths: Sequence[int] = COMPACT_CODE_BITS,
) -> dict[str, Any] | None:
    """Validation metrics of the head's quantized embeddings (None without a validation split).

    ``code_lengths``: the compact codes to report besides the full one (those shorter than the
    embedding).
    """
    if len(prepared.val) == 0:
        return None
    with torch.no_grad():
        docs = head(torch.from_numpy(prepared.documents)).numpy()
        if prepared.kind == "texts":
            metrics = validation_metrics(
                docs[prepared.val],
                docs,
                prepared.documents[prepared.val],
                prepared.documents,
                lo,
                hi,
                exclude=prepared.val,
                code_lengths=code_lengths,
            )
            if prepared.val_crops is not None:
                crops = prepared.val_crops
                crop_metrics = validation_metrics(
                    head(torch.from_numpy(crops)).numpy(),
                    docs,
                    crops,
                    prepared.documents,
                    lo,
                    hi,
                    code_lengths=code_lengths,
                )
                metrics["crop_queries_fidelity@10"] = crop_metrics["fidelity@10"]
            return metrics
        assert prepared.queries is not None and prepared.pairs is not None
        rows = prepared.pairs[prepared.val]
        queries = head(torch.from_numpy(prepared.queries[rows[:, 0]])).numpy()
        return validation_metrics(
            queries,
            docs,
            prepared.queries[rows[:, 0]],
            prepared.documents,
            lo,
            hi,
            positives=rows[:, 1],
            code_lengths=code_lengths,
        )
