"""Reference embeddings from the original sentence-transformers model behind a bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.jsonio import f32_list, write_json
from qembed_worker.bundle.manifest import MODEL_FILE, BundleError, read_manifest
from qembed_worker.models.sources import (
    ResolvedModel,
    load_sentence_transformer,
    resolve_model,
    resolve_source,
)
from qembed_worker.qat.head import apply_head_numpy, read_heads


def read_texts(path: Path) -> list[str]:
    """Read a JSON file holding a list of strings.

    Raises:
        BundleError: The file is not a JSON list of strings.
    """
    try:
        texts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(f"cannot read texts from {path}: {error}") from error
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BundleError(f"{path} must hold a JSON list of strings")
    return texts


def reference_embeddings(
    bundle: Path,
    texts: list[str],
    input_type: str,
    *,
    source: str | None = None,
    batch_size: int = 16,
) -> tuple[dict[str, Any], np.ndarray]:
    """Embed texts with sentence-transformers the way the bundle is meant to.

    The model is the manifest's ``source`` (weights verified against ``weights_sha256``) unless
    ``source`` overrides it; the prompt and ``max_tokens`` are the bundle's. For a head-mode
    QAT bundle, the head(s) baked into its graph are applied after the model.

    Args:
        bundle: The bundle folder.
        texts: Texts without prompt.
        input_type: ``query`` or ``document``.
        source: Alias or folder to load instead of the manifest's source (not verified).
        batch_size: Texts per ``encode`` batch.

    Returns:
        The manifest and float32 embeddings of shape ``(len(texts), dimension)``.

    Raises:
        BundleError: The model's dimension is not the bundle's.
    """
    manifest = read_manifest(bundle)
    training = manifest.get("training") or {}
    if training.get("mode") == "full" and not source:
        raise BundleError(
            f"{bundle} was fine-tuned in full mode: its weights exist only in model.onnx, so "
            "there is no sentence-transformers model to compare it with"
        )
    resolved: ResolvedModel = (
        resolve_model(source) if source else resolve_source(manifest["source"])
    )
    model = load_sentence_transformer(resolved.path)
    model.max_seq_length = int(manifest["max_tokens"])
    embeddings = model.encode(
        texts,
        prompt=manifest["prompts"][input_type],
        batch_size=batch_size,
        convert_to_numpy=True,
        show_progress_bar=len(texts) > 4 * batch_size,
    )
    embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(texts), -1)
    # A head-mode QAT bundle is the original model followed by the head(s) in its graph.
    for weight, bias, normalize in read_heads(bundle / MODEL_FILE):
        embeddings = apply_head_numpy(embeddings, weight, bias, normalize)
    if embeddings.shape[1] != manifest["dimension"]:
        raise BundleError(
            f"{resolved.path} embeds to {embeddings.shape[1]} dimensions, the bundle to "
            f"{manifest['dimension']}"
        )
    return manifest, embeddings


def write_reference_embeddings(
    *,
    bundle: Path,
    texts_path: Path,
    input_type: str,
    out: Path,
    source: str | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Write ``{fingerprint, model, input_type, embeddings}`` for the texts in ``texts_path``.

    Args:
        bundle: The bundle folder.
        texts_path: JSON list of strings.
        input_type: ``query`` or ``document``.
        out: JSON file to write; embeddings are exact float32 values.
        source: See :func:`reference_embeddings`.
        batch_size: See :func:`reference_embeddings`.

    Returns:
        A summary.
    """
    texts = read_texts(texts_path)
    manifest, embeddings = reference_embeddings(
        bundle, texts, input_type, source=source, batch_size=batch_size
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        out,
        {
            "fingerprint": manifest["fingerprint"],
            "model": manifest["source"]["model"],
            "input_type": input_type,
            "embeddings": [f32_list(row) for row in embeddings],
        },
    )
    return {"out": str(out), "texts": len(texts), "dimension": int(embeddings.shape[1])}
