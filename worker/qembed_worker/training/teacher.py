"""The frozen teacher's embeddings of the training texts, computed once and cached on disk.

Head QAT's teacher is the source bundle's own graph
(:func:`qembed_worker.inference.embeddings.bundle_embeddings`); weight QAT's is the
sentence-transformers model behind the bundle (:func:`model_teacher_embeddings`). Both go
through the same disk cache (:func:`qembed_worker.inference.embeddings.cached_embeddings`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from qembed_worker.inference.embeddings import cached_embeddings, default_cache_dir, texts_sha256

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def model_embeddings(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    grad: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Sentence embeddings of texts through the sentence-transformers modules, in input order.

    Unlike ``model.encode`` this keeps the autograd graph when ``grad`` is set.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks = []
    context = contextlib.nullcontext() if grad else torch.no_grad()
    with context, tqdm(total=len(texts), desc="teacher", unit="text", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            features = model.tokenize([texts[i] for i in index])
            chunks.append(model(features)["sentence_embedding"])
            bar.update(len(index))
    embeddings = torch.cat(chunks)
    result = torch.empty_like(embeddings)
    result[torch.tensor(order)] = embeddings
    return result


def model_teacher_embeddings(
    teacher: SentenceTransformer,
    texts: Sequence[str],
    *,
    key: str,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The teacher model's embeddings of ``texts``, cached on disk (they take minutes on a CPU).

    Args:
        teacher: The frozen float32 model.
        texts: The training texts (prompts included).
        key: Names the teacher and its truncation (bundle fingerprint and max tokens).
        cache_dir: Default: the embedding cache of ``eval-bundle``
            (``$QEMBED_EMBEDDING_CACHE`` or ``~/.cache/qembed/embeddings``).
        progress: Show a tqdm bar when computing.

    Returns:
        float32 ``[len(texts), dim]``.
    """
    folder = cache_dir or default_cache_dir()
    path = folder / f"weight-qat-teacher-{key}-{texts_sha256(texts)[:24]}.npy"

    def compute():
        return model_embeddings(teacher, texts, batch_size=64, progress=progress).numpy()

    return torch.from_numpy(cached_embeddings(path, compute, rows=len(texts)))
