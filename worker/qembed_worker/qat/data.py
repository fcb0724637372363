"""Training data on the teacher's side: texts and pairs as indices into cached embeddings.

:func:`embed_training_data` embeds the training texts (and their query-like crops, or the
queries and documents of pairs) once with the source bundle's own graph, through the embedding
cache, and splits the items into training and held-out ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.data.datasets import TrainingData
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.qat.config import TrainConfig
from qembed_worker.training.crops import numpy_draw, word_crops


@dataclass
class Prepared:
    """Training data turned into indices into cached teacher embeddings.

    Attributes:
        kind: ``texts`` or ``pairs``.
        documents: ``(n, d)`` float32 teacher embeddings of the document-side texts.
        queries: ``(m, d)`` float32 teacher embeddings of queries (pairs only).
        doc_texts: The document-side texts (full mode embeds them again).
        query_texts: The query texts (pairs only).
        pairs: ``(query index, positive index, negative index or -1)`` rows (pairs only).
        train: Indices of training items (texts, or pair rows).
        val: Indices of held-out items.
        crops: ``(n, d)`` teacher embeddings of one query-like crop per text (query prompt),
            when ``--crop-queries`` is set.
        crop_texts: The crops' texts (all texts when ``crops`` is set).
        val_crops: Teacher embeddings of the held-out texts' crops (texts only): a query-like
            validation set, whether or not crops are trained on.
    """

    kind: str
    documents: np.ndarray
    queries: np.ndarray | None
    doc_texts: list[str]
    query_texts: list[str]
    pairs: np.ndarray | None
    train: np.ndarray
    val: np.ndarray
    crops: np.ndarray | None = None
    crop_texts: list[str] = field(default_factory=list)
    val_crops: np.ndarray | None = None


def query_crops(texts: list[str], seed: int, max_words: int, min_words: int = 4) -> list[str]:
    """One query-like crop per text (:mod:`qembed_worker.training.crops`), a function of ``seed``.

    A random run of ``min_words``..``max_words`` words; texts shorter than the drawn length are
    kept whole.
    """
    return word_crops(texts, numpy_draw(seed), min_words=min_words, max_words=max_words)


def split_items(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``min(val_size, n // 5)`` items chosen by the seed; the rest train."""
    size = min(val_size, n // 5)
    order = np.random.default_rng([seed, 7919]).permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])


def embed_training_data(
    data: TrainingData, bundle: Path, manifest: dict[str, Any], config: TrainConfig
) -> Prepared:
    """Embed (or read from the cache) the teacher embeddings of the training data."""
    common = {"cache_dir": config.cache_dir, "manifest": manifest, "progress": config.progress}
    if data.kind == "texts":
        documents = bundle_embeddings(bundle, data.texts, "document", label="training", **common)
        train, val = split_items(len(data.texts), config.val_size, config.seed)
        crops = None
        all_crops = query_crops(data.texts, config.seed, config.crop_words)
        if config.crop_queries:
            crops = bundle_embeddings(bundle, all_crops, "query", label="query-like crop", **common)
            val_crops = crops[val]
        elif len(val) == 0:
            val_crops = None
        else:
            val_crops = bundle_embeddings(
                bundle, [all_crops[i] for i in val], "query", label="validation crop", **common
            )
        return Prepared(
            "texts",
            documents,
            None,
            data.texts,
            [],
            None,
            train,
            val,
            crops,
            all_crops if config.crop_queries else [],
            val_crops if len(val) and val_crops is not None else None,
        )
    query_texts = list(dict.fromkeys(p.query for p in data.pairs))
    doc_texts = list(
        dict.fromkeys(t for p in data.pairs for t in (p.positive, p.negative) if t is not None)
    )
    query_index = {t: i for i, t in enumerate(query_texts)}
    doc_index = {t: i for i, t in enumerate(doc_texts)}
    rows = np.array(
        [
            (
                query_index[p.query],
                doc_index[p.positive],
                doc_index[p.negative] if p.negative is not None else -1,
            )
            for p in data.pairs
        ],
        dtype=np.int64,
    )
    queries = bundle_embeddings(bundle, query_texts, "query", label="training query", **common)
    documents = bundle_embeddings(
        bundle, doc_texts, "document", label="training document", **common
    )
    train, val = split_items(len(rows), config.val_size, config.seed)
    return Prepared("pairs", documents, queries, doc_texts, query_texts, rows, train, val)
