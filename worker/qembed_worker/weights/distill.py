"""Weight QAT's fine-tuning: the fake-quantized student learns the float32 teacher's embeddings.

:func:`distill` fine-tunes a model prepared by
:func:`qembed_worker.weights.fake_quant.fake_quantize_linears` to reproduce the frozen float32
teacher's sentence embeddings (no labels) with
:func:`qembed_worker.training.losses.embedding_distillation`: ``1 - cos(student, teacher)`` plus
the KL divergence between the teacher's and the student's in-batch similarity distributions, so
that both each embedding and the geometry between texts are kept. The training texts are a
corpus plus query-like spans cut from it (:func:`distill_spans`), batched by length
(:func:`qembed_worker.training.batches.length_batches`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from qembed_worker.training.batches import length_batches
from qembed_worker.training.crops import python_draw, word_crops
from qembed_worker.training.losses import embedding_distillation
from qembed_worker.weights.fake_quant import set_quant_noise

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass
class DistillConfig:
    """Self-distillation settings.

    Attributes:
        epochs: Passes over the training texts.
        batch_size: Texts per step.
        lr: Peak AdamW learning rate (linear warm-up over ``warmup`` of the steps, then linear
            decay to zero).
        warmup: Fraction of the steps spent warming up.
        kl_weight: Weight of the in-batch similarity KL term.
        temperature: Softmax temperature of the similarity distributions.
        spans_per_text: Short spans (query-like inputs) cut from each text, added to the data.
        span_words: ``(min, max)`` words of a span.
        max_tokens: Truncation during training (``None``: the model's).
        seed: Seeds shuffling, spans and Quant-Noise.
        max_steps: Stop after this many steps (``None``: all epochs).
    """

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 2e-5
    warmup: float = 0.1
    kl_weight: float = 1.0
    temperature: float = 0.05
    spans_per_text: int = 1
    span_words: tuple[int, int] = (3, 12)
    max_tokens: int | None = None
    seed: int = 0
    max_steps: int | None = None


def distill_spans(texts: Sequence[str], config: DistillConfig) -> list[str]:
    """Short word spans cut out of the texts (seeded), as query-like training inputs.

    ``config.spans_per_text`` spans of each text, ``config.span_words`` words long; a text of at
    most the shortest length is kept whole (:func:`qembed_worker.training.crops.word_crops`).
    """
    low, high = config.span_words
    return word_crops(
        texts,
        python_draw(config.seed),
        min_words=low,
        max_words=high,
        per_text=config.spans_per_text,
        fit_to_text=True,
    )


def distill(
    student: SentenceTransformer,
    teacher_embeddings: torch.Tensor,
    texts: Sequence[str],
    config: DistillConfig,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a prepared student to reproduce the teacher's embeddings of ``texts``.

    The student runs in evaluation mode (no dropout: the target is deterministic), with
    Quant-Noise switched on during the steps and off at the end.

    Args:
        student: The model after
            :func:`~qembed_worker.weights.fake_quant.fake_quantize_linears`.
        teacher_embeddings: ``[len(texts), dim]`` float32 embeddings of the frozen teacher.
        texts: The training texts, with any prompt already prepended.
        config: Settings.
        progress: Show a tqdm bar.

    Returns:
        Steps, minutes and the loss history summary.
    """
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if config.max_tokens is not None:
        student.max_seq_length = config.max_tokens
    lengths = [len(t) for t in texts]
    per_epoch = math.ceil(len(texts) / config.batch_size)
    total = math.ceil(per_epoch * config.epochs)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    warmup = max(1, int(total * config.warmup))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    student.eval()
    set_quant_noise(student, True)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    step = 0
    try:
        with tqdm(total=total, desc="weight QAT", unit="step", disable=not progress) as bar:
            while step < total:
                for batch in length_batches(lengths, config.batch_size, rng):
                    if step >= total:
                        break
                    features = student.tokenize([texts[i] for i in batch])
                    embeddings = student(features)["sentence_embedding"]
                    loss, parts = embedding_distillation(
                        embeddings,
                        teacher_embeddings[batch],
                        kl_weight=config.kl_weight,
                        temperature=config.temperature,
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    history.append(parts)
                    step += 1
                    bar.update(1)
                    bar.set_postfix(cos=f"{parts['cos']:.5f}", kl=f"{parts['kl']:.4f}")
    finally:
        set_quant_noise(student, False)
    minutes = (time.perf_counter() - started) / 60

    def mean(key: str, part: list[dict[str, float]]) -> float | None:
        return round(float(np.mean([h[key] for h in part])), 6) if part else None

    window = max(1, len(history) // 10)
    return {
        "steps": step,
        "minutes": round(minutes, 2),
        "first_steps": {k: mean(k, history[:window]) for k in ("loss", "cos", "kl")},
        "last_steps": {k: mean(k, history[-window:]) for k in ("loss", "cos", "kl")},
    }
