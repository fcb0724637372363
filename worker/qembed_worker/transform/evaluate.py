"""Label-free recall of a first stage: how much of the exact top-10 its top-40 keeps.

The queries are documents held out of the fit, searched against the fitted documents. The exact
ranking is cosine over the float vectors; a first stage ranks by Hamming (query signs against
document signs) or asymmetrically (the float projected query against the document signs, as the
service's asymmetric stage does). recall@40 is the share of each query's exact top-10 found
among the first stage's 40 best, averaged over queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

EXACT_TOP = 10
FIRST_STAGE_K = 40
QUERY_CHUNK = 256


@dataclass(frozen=True)
class Transform:
    """A code transform: ``bits = W (x - mean) > 0``; the asymmetric query is ``W q``."""

    mean: np.ndarray
    weights: np.ndarray


def _top_hamming(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` best Hamming scores per row; ties go to the lower index first.

    Hamming scores tie often (a 64-bit code has 65 values) and which of the tied documents at the
    40th place are kept moves recall, so a fixed rule (the service's stable order) keeps the figure
    reproducible. The scores are integers two apart, so subtracting ``index / (n + 1) < 1`` orders
    ties without reordering anything else.
    """
    n = scores.shape[1]
    return torch.topk(scores.double() - torch.arange(n, dtype=torch.float64) / (n + 1), k).indices


def _without_self(scores: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
    """``scores`` with each query's own document (when it is one of them) ranked last."""
    if own is not None:
        scores[torch.arange(len(scores)), own] = -math.inf
    return scores


def exact_neighbours(
    queries: np.ndarray,
    documents: np.ndarray,
    k: int = EXACT_TOP,
    own: np.ndarray | None = None,
) -> np.ndarray:
    """Each query's ``k`` nearest documents by cosine, ``(h, k)`` indices.

    ``own[i]`` is the index of query ``i`` among the documents when the queries are documents
    themselves (never its own neighbour), ``None`` when they are held out.
    """
    q = torch.nn.functional.normalize(torch.from_numpy(queries).float(), dim=1)
    d = torch.nn.functional.normalize(torch.from_numpy(documents).float(), dim=1)
    own_t = None if own is None else torch.from_numpy(np.asarray(own))
    out = []
    for i in range(0, len(q), QUERY_CHUNK):
        scores = q[i : i + QUERY_CHUNK] @ d.T
        own_chunk = None if own_t is None else own_t[i : i + QUERY_CHUNK]
        out.append(torch.topk(_without_self(scores, own_chunk), k, dim=1).indices)
    return torch.cat(out).numpy()


def _signs(x: torch.Tensor, mean: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.where((x - mean) @ w.T > 0, 1.0, -1.0)


def first_stage_recall(
    queries: np.ndarray,
    documents: np.ndarray,
    truth: np.ndarray,
    transform: Transform,
    k: int = FIRST_STAGE_K,
    own: np.ndarray | None = None,
) -> dict[str, float]:
    """recall@k of the exact neighbours ``truth`` for both first stages of one transform.

    Args:
        queries: ``(h, d)`` float32 query vectors.
        documents: ``(n, d)`` float32 document vectors (``n >= k``).
        truth: ``(h, t)`` indices of each query's exact top-``t``.
        transform: The code transform.
        k: How many candidates the first stage keeps.
        own: Each query's index among the documents, never a candidate (see
            :func:`exact_neighbours`); ``None`` for held-out queries.

    Returns:
        ``{"hamming": r, "asymmetric": r}``.
    """
    mean = torch.from_numpy(transform.mean).float()
    w = torch.from_numpy(transform.weights).float()
    q = torch.from_numpy(queries).float()
    doc_signs = _signs(torch.from_numpy(documents).float(), mean, w)
    truth_t = torch.from_numpy(truth)
    own_t = None if own is None else torch.from_numpy(np.asarray(own))
    kept = {"hamming": 0, "asymmetric": 0}
    k = min(k, len(documents))
    for i in range(0, len(q), QUERY_CHUNK):
        chunk = q[i : i + QUERY_CHUNK]
        expected = truth_t[i : i + QUERY_CHUNK]
        own_chunk = None if own_t is None else own_t[i : i + QUERY_CHUNK]
        stages = {
            "hamming": _signs(chunk, mean, w) @ doc_signs.T,
            "asymmetric": (chunk @ w.T) @ doc_signs.T,
        }
        for name, scores in stages.items():
            scores = _without_self(scores, own_chunk)
            found = _top_hamming(scores, k) if name == "hamming" else torch.topk(scores, k).indices
            kept[name] += int((found[:, :, None] == expected[:, None, :]).sum())
    total = truth.size
    return {name: round(hits / total, 4) for name, hits in kept.items()}
