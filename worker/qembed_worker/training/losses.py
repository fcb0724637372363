"""The base losses of both trainers: in-batch distillation and contrastive ranking.

- :func:`distillation_kl`: the student's in-batch similarity distribution matched to the frozen
  float32 teacher's (KL between the two softmaxes). Head QAT applies it to each fake-quantized
  precision (:class:`qembed_worker.qat.losses.QatLoss`); weight QAT adds it to the cosine term
  of :func:`embedding_distillation`.
- :func:`embedding_distillation`: ``1 - cos(student, teacher)`` plus that KL: the student keeps
  each embedding and the geometry between texts (weight QAT, where the student is the whole
  encoder and can drift anywhere).
- :func:`mnrl`: MultipleNegativesRanking / InfoNCE on (query, positive[, negative]) pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional


def _masked_diagonal(logits: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.masked_fill(eye, float("-inf"))


def distillation_kl(
    student_rows: torch.Tensor,
    student_cols: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    scale: torch.Tensor | float = 1.0,
    teacher_rows: torch.Tensor | None = None,
    *,
    include_self: bool = False,
) -> torch.Tensor:
    """KL(teacher ‖ student) between softmaxes of in-batch similarities, mean over rows.

    Args:
        student_rows: ``(r, d)`` student embeddings on the row (query) side.
        student_cols: ``(b, d)`` student embeddings on the column (document) side.
        teacher: ``(b, d)`` frozen float32 teacher embeddings of the column texts.
        temperature: Softmax temperature.
        scale: Multiplies the student's similarities.
        teacher_rows: Teacher embeddings of other row texts (e.g. query-like crops of the
            column texts); ``None`` when rows and columns are the same texts.
        include_self: When rows and columns are the same texts, keep each text's similarity to
            itself in both softmaxes (weight QAT) instead of leaving it out (head QAT: a text
            always ranks itself first, which teaches a head nothing).

    Returns:
        A scalar.
    """
    if teacher_rows is None:
        teacher_logits = teacher @ teacher.T / temperature
        student_logits = scale * (student_rows @ student_cols.T) / temperature
        if include_self:
            # Nothing masked: torch's kl_div over the full softmaxes. The same KL as below, in
            # the order of operations weight QAT's bundles were trained with (the two differ in
            # the last bits, and a long run would not reproduce its fingerprint otherwise).
            return functional.kl_div(
                functional.log_softmax(student_logits, dim=-1),
                functional.log_softmax(teacher_logits, dim=-1),
                log_target=True,
                reduction="batchmean",
            )
        teacher_logits = _masked_diagonal(teacher_logits)
        student_logits = _masked_diagonal(student_logits)
    else:
        teacher_logits = teacher_rows @ teacher.T / temperature
        student_logits = scale * (student_rows @ student_cols.T) / temperature
    target = functional.softmax(teacher_logits, dim=-1)
    log_student = functional.log_softmax(student_logits, dim=-1)
    log_target = functional.log_softmax(teacher_logits, dim=-1)
    # The masked diagonal has p = 0: define its term as 0 instead of 0 * (-inf - -inf).
    terms = torch.where(target > 0, target * (log_target - log_student), 0.0)
    return terms.sum(dim=-1).mean()


def embedding_distillation(
    student: torch.Tensor, teacher: torch.Tensor, *, kl_weight: float, temperature: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``mean(1 - cos(s, t)) + kl_weight * KL(P_teacher || P_student)`` over a batch.

    ``P`` is the softmax over each row of the in-batch cosine similarity matrix divided by
    ``temperature``, self-similarity included (:func:`distillation_kl`).

    Args:
        student: ``[batch, dim]`` student embeddings (with gradient).
        teacher: ``[batch, dim]`` teacher embeddings.
        kl_weight: Weight of the KL term.
        temperature: Softmax temperature.

    Returns:
        The loss and its parts as floats (``loss``, ``cos``: mean cosine, ``kl``).
    """
    s = functional.normalize(student, dim=-1)
    t = functional.normalize(teacher, dim=-1)
    cosine = (s * t).sum(dim=-1)
    loss_cos = (1 - cosine).mean()
    kl = distillation_kl(s, s, t, temperature, include_self=True)
    loss = loss_cos + kl_weight * kl
    return loss, {
        "loss": float(loss.detach()),
        "cos": float(cosine.detach().mean()),
        "kl": float(kl.detach()),
    }


def mnrl(
    queries: torch.Tensor,
    documents: torch.Tensor,
    temperature: float,
    scale: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """MultipleNegativesRanking (InfoNCE): query ``i``'s positive is document ``i``.

    Args:
        queries: ``(b, d)``.
        documents: ``(b + extra, d)``: the ``b`` positives first, then any hard negatives.
        temperature: Softmax temperature (sentence-transformers' scale is ``1/temperature``).
        scale: Multiplies the similarities.

    Returns:
        The mean cross-entropy.
    """
    logits = scale * (queries @ documents.T) / temperature
    labels = torch.arange(queries.shape[0], device=queries.device)
    return functional.cross_entropy(logits, labels)
