"""The quantization-aware transform: projections trained so that the codes rank like the floats.

Label-free: each training anchor is a document; its candidates are its nearest documents (mined
once, by float cosine) and a shared pool of random documents drawn each step. The teacher is
the softmax of the float cosines over those candidates at a low temperature; the students are the
softmaxes of the two first stages' scores, asymmetric ``<W q, sign(W(x - mean))>`` and Hamming
``<sign(W(q - mean)), sign(W(x - mean))>``, each with its own learnt scale. The loss is
``KL(teacher || student)`` for both stages, summed over the code lengths; signs pass gradients
straight through (identity inside a clip band).

Each code length has its own matrix, started from its own ITQ fit. One matrix whose prefixes
served every length (Matryoshka) would save nothing the service keeps (a collection stores the
codes of one length, recomputed from its int8 codes in a second or so), and the issue's first
run showed what sharing costs: its 64-bit prefix fell short of an ITQ fitted for 64 bits alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from qembed_worker.quant.codes import sign_ste
from qembed_worker.transform.evaluate import Transform, exact_neighbours, first_stage_recall

MINE_CHUNK = 1024


@dataclass(frozen=True)
class QatConfig:
    """How the QAT transform is trained.

    Attributes:
        steps: Optimizer steps.
        batch: Anchors per step.
        neighbours: Mined nearest documents per anchor (the head of its ranking).
        pool: Random documents per step shared by every anchor (the rest of the collection).
        anchors: At most this many documents are anchors (their neighbours are mined up front).
        temperature: Teacher softmax temperature over cosines.
        lr: Adam learning rate (cosine decay to zero).
        clip: Straight-through gradients pass where ``|z|`` is below ``clip`` times the
            projection's standard deviation, and stop where the sign is far from flipping.
        validation: At most this many documents (and a tenth of a small collection) are never
            anchors: they are searched as queries every ``steps / checks`` steps, and each
            length keeps the weights of the check with the best recall@40 (both stages summed),
            the ITQ start included, so training can never leave a length worse than ITQ on them.
        checks: How many validation checks after the start.
    """

    steps: int = 600
    batch: int = 256
    neighbours: int = 48
    pool: int = 4096
    anchors: int = 8192
    temperature: float = 0.05
    lr: float = 3e-4
    clip: float = 3.0
    validation: int = 500
    checks: int = 5


def mine_neighbours(
    anchors: torch.Tensor,
    documents: torch.Tensor,
    anchor_ids: torch.Tensor,
    k: int,
    check: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Each anchor's ``k`` nearest documents by cosine, itself excluded; ``(a, k)`` indices."""
    d = torch.nn.functional.normalize(documents, dim=1)
    q = torch.nn.functional.normalize(anchors, dim=1)
    out = []
    for i in range(0, len(q), MINE_CHUNK):
        if check is not None:
            check()
        scores = q[i : i + MINE_CHUNK] @ d.T
        rows = torch.arange(len(scores))
        scores[rows, anchor_ids[i : i + MINE_CHUNK]] = -math.inf
        out.append(torch.topk(scores, k, dim=1).indices)
    return torch.cat(out)


def _kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``KL(softmax(teacher) || softmax(student))``."""
    log_p = torch.log_softmax(teacher, dim=1)
    return (log_p.exp() * (log_p - torch.log_softmax(student, dim=1))).sum(dim=1).mean()


class _Model(torch.nn.Module):
    """The trainable projections, one per code length, and each stage's softmax scale."""

    def __init__(self, inits: dict[int, np.ndarray], mean: torch.Tensor, temperature: float):
        super().__init__()
        self.lengths = sorted(inits, reverse=True)
        self.weights = torch.nn.ParameterDict(
            {str(b): torch.nn.Parameter(torch.from_numpy(inits[b]).float().clone()) for b in inits}
        )
        scale = math.log(1.0 / temperature)
        self.log_scales = torch.nn.ParameterDict(
            {f"{s}{b}": torch.nn.Parameter(torch.tensor(scale)) for b in inits for s in "ah"}
        )
        self.register_buffer("mean", mean)

    def loss(
        self,
        queries: torch.Tensor,
        near: torch.Tensor,
        pool: torch.Tensor,
        teacher: torch.Tensor,
        clip: float,
    ) -> torch.Tensor:
        """Summed KL of both stages over every length.

        Args:
            queries: ``(B, d)`` anchors.
            near: ``(B, K, d)`` each anchor's mined neighbours.
            pool: ``(M, d)`` random documents every anchor is scored against.
            teacher: ``(B, K + M)`` teacher logits, neighbours first.
            clip: Straight-through band in projection standard deviations.
        """
        total = queries.new_zeros(())
        for b in self.lengths:
            w = self.weights[str(b)]
            zq, zn, zp = ((t - self.mean) @ w.T for t in (queries, near, pool))
            band = (clip * zp.detach().std(dim=0)).clamp_min(1e-12)
            sq, sn, sp = (sign_ste(z, band) for z in (zq, zn, zp))
            wq = queries @ w.T
            asym = torch.cat([torch.einsum("bj,bkj->bk", wq, sn), wq @ sp.T], 1) / math.sqrt(b)
            ham = torch.cat([torch.einsum("bj,bkj->bk", sq, sn), sq @ sp.T], 1) / b
            total = total + _kl(teacher, asym * self.log_scales[f"a{b}"].exp())
            total = total + _kl(teacher, ham * self.log_scales[f"h{b}"].exp())
        return total


def train_qat(
    documents: np.ndarray,
    mean: np.ndarray,
    inits: dict[int, np.ndarray],
    config: QatConfig,
    seed: int,
    *,
    progress: Callable[[int, int, float], None] | None = None,
    check: Callable[[], None] | None = None,
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Train one projection per code length from its start (the ITQ fit).

    Deterministic given ``seed``, the inputs and torch's thread count.

    Args:
        documents: ``(n, d)`` float32 fitted documents.
        mean: ``(d,)`` their mean (the transform's centre, kept fixed).
        inits: Starting ``(b, d)`` projection of each code length.
        config: Training settings.
        seed: Seeds the anchor choice and every batch.
        progress: ``progress(step, total, loss)`` after each step.
        check: Called before each step and mining chunk (raises to cancel).

    Returns:
        The kept ``(b, d)`` float32 projections by length, and a training summary
        (``loss_start``/``loss_end``: the loss on a fixed probe batch before and after
        training; ``kept_step``: the validation check each length's weights come from, 0 for
        ITQ's; ``validation_recall``: their mean recall@40 over both stages).
    """
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(documents, dtype=np.float32))
    n = len(x)
    k = min(config.neighbours, n - 1)
    order = torch.randperm(n, generator=generator)
    validation_ids = order[: min(config.validation, max(n // 10, 1))].numpy()
    anchor_ids = order[len(validation_ids) :][: config.anchors]
    neighbours = mine_neighbours(x[anchor_ids], x, anchor_ids, k, check)
    xn = torch.nn.functional.normalize(x, dim=1)
    model = _Model(inits, torch.from_numpy(np.asarray(mean, dtype=np.float32)), config.temperature)

    def batch(rows: torch.Tensor, pool: torch.Tensor) -> tuple[torch.Tensor, ...]:
        near, anchors = neighbours[rows], anchor_ids[rows]
        teacher = torch.cat(
            [torch.einsum("bd,bkd->bk", xn[anchors], xn[near]), xn[anchors] @ xn[pool].T], 1
        )
        return x[anchors], x[near], x[pool], teacher / config.temperature

    batch_size = min(config.batch, len(anchor_ids))
    probe = batch(
        torch.arange(batch_size),
        torch.randperm(n, generator=generator)[: min(config.pool, n)],
    )
    with torch.no_grad():
        loss_start = float(model.loss(*probe, config.clip))
    queries = documents[validation_ids]
    truth = exact_neighbours(queries, documents, own=validation_ids)
    best: dict[int, tuple[float, int, np.ndarray]] = {}

    def validate(step: int) -> None:
        for b in model.lengths:
            weights = model.weights[str(b)].detach().numpy().copy()
            transform = Transform(model.mean.numpy(), weights)
            recall = first_stage_recall(queries, documents, truth, transform, own=validation_ids)
            score = recall["hamming"] + recall["asymmetric"]
            if b not in best or score > best[b][0]:
                best[b] = (score, step, weights)

    every = max(config.steps // max(config.checks, 1), 1)
    validate(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / config.steps))
    )
    for step in range(1, config.steps + 1):
        if check is not None:
            check()
        rows = torch.randint(len(anchor_ids), (batch_size,), generator=generator)
        pool = torch.randint(n, (min(config.pool, n),), generator=generator)
        loss = model.loss(*batch(rows, pool), config.clip)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % every == 0 or step == config.steps:
            validate(step)
        if progress is not None:
            progress(step, config.steps, float(loss.detach()))
    with torch.no_grad():
        loss_end = float(model.loss(*probe, config.clip))
    trained = {b: best[b][2].astype(np.float32) for b in inits}
    summary = {
        **asdict(config),
        "anchors": len(anchor_ids),
        "neighbours": k,
        "validation": len(validation_ids),
        "kept_step": {str(b): best[b][1] for b in model.lengths},
        "validation_recall": {str(b): round(best[b][0] / 2, 4) for b in model.lengths},
        "seconds": round(time.perf_counter() - started, 1),
        "loss_start": round(loss_start, 6),
        "loss_end": round(loss_end, 6),
    }
    return trained, summary
