"""Embeddings of whole corpora, cached on disk: the one cache of every teacher and evaluation.

:func:`cached_embeddings` reads or computes one file; :func:`bundle_embeddings` is a bundle's
graph on texts, keyed by the bundle fingerprint and the texts' hash (head QAT's teacher,
evaluation); weight QAT's teacher, the sentence-transformers model, goes through the same cache
(:func:`qembed_worker.training.teacher.model_teacher_embeddings`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.manifest import read_manifest
from qembed_worker.cache import cache_dir


def default_cache_dir() -> Path:
    """Where embeddings are cached (``QEMBED_EMBEDDING_CACHE`` overrides)."""
    return cache_dir("embeddings", "QEMBED_EMBEDDING_CACHE")


def texts_sha256(texts: Sequence[str]) -> str:
    """SHA-256 of a list of texts (JSON-encoded), naming it in cache keys."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def cache_key(fingerprint: str, input_type: str, texts: Sequence[str]) -> str:
    """Return the cache file stem: fingerprint, input type and the texts' hash.

    The fingerprint covers the graph, the tokenizer and the prompts, so it names the encoder.
    """
    return f"{fingerprint}-{input_type}-{texts_sha256(texts)[:24]}"


def bundle_embeddings(
    bundle: Path,
    texts: Sequence[str],
    input_type: str,
    *,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
    manifest: dict[str, Any] | None = None,
    label: str = "",
    progress: bool = True,
) -> np.ndarray:
    """Embed texts with a bundle's ``model.onnx`` exactly as the service does, with a disk cache.

    Args:
        bundle: The bundle folder.
        texts: Texts without prompt (the bundle's prompt for ``input_type`` is prepended).
        input_type: ``query`` or ``document``.
        cache_dir: Cache folder (default :func:`default_cache_dir`).
        use_cache: Read and write the cache.
        batch_size: Texts per onnxruntime call.
        manifest: The bundle's manifest if already read.
        label: What is being embedded, for the progress message.
        progress: Show a progress bar.

    Returns:
        float32 ``(len(texts), dimension)``, a fresh array (the cache file is never modified).
    """
    from qembed_worker.inference.encoder import OnnxEncoder

    manifest = manifest or read_manifest(bundle)
    folder = cache_dir or default_cache_dir()
    path = folder / f"{cache_key(manifest['fingerprint'], input_type, texts)}.npy"

    def compute() -> np.ndarray:
        print(
            f"qembed-worker: embedding {len(texts)} {label or input_type} texts with "
            f"{manifest['fingerprint']} ({bundle})",
            file=sys.stderr,
            flush=True,
        )
        encoder = OnnxEncoder(bundle, manifest["prompts"], manifest["onnx"]["inputs"])
        return encoder.encode(
            list(texts), input_type=input_type, batch_size=batch_size, progress=progress
        )

    return cached_embeddings(
        path, compute, rows=len(texts), dimension=manifest["dimension"], use_cache=use_cache
    )


def cached_embeddings(
    path: Path,
    compute: Callable[[], np.ndarray],
    *,
    rows: int,
    dimension: int | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """The embeddings stored in ``path``, or ``compute()``'s, then stored there.

    A file of another shape (``rows`` x ``dimension``, any dimension when ``None``) is computed
    again. The file is written atomically and never modified afterwards.

    Returns:
        float32 ``(rows, dimension)``, a fresh array.
    """
    if use_cache and path.is_file():
        found = np.load(path)
        if found.shape[0] == rows and (dimension is None or found.shape[1:] == (dimension,)):
            return found.astype(np.float32, copy=True)
    embeddings = np.asarray(compute(), dtype=np.float32)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(staging, embeddings)
        staging.replace(path)
    return embeddings
