"""How training items are grouped into batches.

Two orders, one per kind of student: :func:`batches_for_epoch` for students that read cached
embeddings (head QAT: every batch costs the same, so batches are drawn for what they teach:
random, or anchors with their nearest neighbours), and :func:`length_batches` for students that
run the encoder on texts (weight QAT, full-mode QAT would too: texts of similar length share a
batch, so little of it is padding).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from qembed_worker.eval.evaluate import top_k


def batches_for_epoch(
    train: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    neighbors: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of ``(seed, epoch)``.

    Without ``neighbors``: a permutation of the training items cut into full batches (the last
    partial batch is dropped). With ``neighbors`` (``neighbors[i]`` = item ``i``'s nearest
    training items by teacher similarity, nearest first): each batch takes the next anchors of
    the permutation together with their neighbours (``k`` items per anchor group), skipping
    items already in the batch, so in-batch similarities are decided among near neighbours —
    where a top-10 is decided. Drawing each epoch's order from its own seed makes the data order
    a pure function of the step, so a resumed run sees exactly the batches an uninterrupted one
    would.
    """
    size = min(batch_size, len(train))
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(train)
    count = len(order) // size
    if neighbors is None:
        return [order[i * size : (i + 1) * size] for i in range(count)]
    batches = []
    cursor = 0
    for _ in range(count):
        chosen: dict[int, None] = {}
        while len(chosen) < size:
            anchor = int(order[cursor % len(order)])
            cursor += 1
            for item in (anchor, *neighbors[anchor].tolist()):
                if len(chosen) == size:
                    break
                if item >= 0:
                    chosen.setdefault(int(item), None)
        batches.append(np.fromiter(chosen, dtype=np.int64, count=size))
    return batches


def nearest_neighbors(embeddings: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """For every row of ``embeddings``, its ``k`` most similar rows among ``items``.

    Args:
        embeddings: ``(n, d)`` teacher embeddings.
        items: The indices allowed as neighbours (the training items).
        k: Neighbours per row (the row itself excluded).

    Returns:
        ``(n, k)`` int64 indices into ``embeddings`` (``-1`` pads when fewer exist); rows that
        are not in ``items`` keep ``-1``.
    """
    out = np.full((len(embeddings), k), -1, dtype=np.int64)
    pool = embeddings[items].astype(np.float32)
    for start in range(0, len(items), 1024):
        rows = items[start : start + 1024]
        scores = embeddings[rows].astype(np.float32) @ pool.T
        scores[np.arange(len(rows)), np.searchsorted(items, rows)] = -np.inf
        found = top_k(scores, k)
        out[rows, : found.shape[1]] = items[found]
    return out


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One pass over the items in shuffled batches of similar lengths (little padding).

    The items are shuffled, cut into pools of 50 batches, each pool sorted by length and cut
    into batches (the last one of a pool may be short), and the batches shuffled. ``rng``
    carries on from one pass to the next.
    """
    index = list(range(len(lengths)))
    rng.shuffle(index)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(index), pool):
        chunk = sorted(index[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
