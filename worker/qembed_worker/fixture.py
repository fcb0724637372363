"""The tiny random-weight bundle that the service's tests load (test/fixtures/tiny-bundle)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from qembed_worker.bundle import sha256_file
from qembed_worker.models import (
    MINILM_ALIAS,
    TINY_ALIAS,
    TINY_MODEL_ID,
    load_sentence_transformer,
    resolve_model,
    weights_file,
)

TINY_SEED = 1234
TINY_BERT = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
}
TINY_MAX_TOKENS = 128
TINY_PROMPTS = {"query": "query: ", "document": "passage: "}
# Pinned so that regenerating the fixture rewrites byte-identical files.
FIXTURE_CREATED_AT_EPOCH = "1735689600"  # 2025-01-01T00:00:00Z
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def build_tiny_model(folder: Path) -> Path:
    """Write the tiny sentence-transformers model (seeded random BERT) into ``folder``.

    The tokenizer is all-MiniLM-L6-v2's, so token ids are realistic and the vocabulary is the
    real one; only the weights are random.

    Args:
        folder: An empty folder.

    Returns:
        ``folder``.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from transformers import BertConfig, BertModel

    minilm = resolve_model(MINILM_ALIAS).path
    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True)
    torch.manual_seed(TINY_SEED)
    bert = BertModel(BertConfig(**TINY_BERT)).eval()
    bert.save_pretrained(hf_dir)
    for name in TOKENIZER_FILES:
        shutil.copyfile(minilm / name, hf_dir / name)
    transformer = Transformer(str(hf_dir), max_seq_length=TINY_MAX_TOKENS)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()], prompts=dict(TINY_PROMPTS), device="cpu"
    )
    model_dir = folder / "model"
    model.save(str(model_dir))
    shutil.rmtree(hf_dir)
    return model_dir


def tiny_model_folder() -> Path:
    """Build the tiny model in a temporary folder removed at exit, and return its path."""
    root = Path(tempfile.mkdtemp(prefix="qembed-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    return build_tiny_model(root)


def write_fixture(out: Path, *, limit: int = 400, cache_dir: Path | None = None) -> dict[str, Any]:
    """Write the tiny bundle to ``out``, calibrated on the first ``limit`` Lee passages.

    Args:
        out: The bundle folder (bundle files in it are replaced).
        limit: Lee passages used for calibration.
        cache_dir: Download cache for the Lee corpus.

    Returns:
        A summary with the fingerprint and parity against sentence-transformers.
    """
    from qembed_worker.bundle import check_bundle
    from qembed_worker.calibration import calibrate
    from qembed_worker.export import MIN_COSINE, inspect_model, parity, write_bundle
    from qembed_worker.models import ModelError

    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = previous or FIXTURE_CREATED_AT_EPOCH
    try:
        with tempfile.TemporaryDirectory(prefix="qembed-tiny-") as work:
            folder = build_tiny_model(Path(work))
            model = load_sentence_transformer(folder)
            spec = inspect_model(model)
            source = {
                "model": TINY_MODEL_ID,
                "package": None,
                "weights_sha256": sha256_file(weights_file(folder)),
            }

            def calibrate_fn(staging: Path, manifest: dict[str, Any]) -> Any:
                return calibrate(staging, manifest, corpus="lee", limit=limit, cache_dir=cache_dir)

            manifest, timings, fused = write_bundle(
                model,
                folder,
                out,
                name=TINY_ALIAS,
                source=source,
                spec=spec,
                opset=18,
                calibrate_fn=calibrate_fn,
            )
            check_bundle(out)
            cosines = parity(model, out, manifest, ["a", "hello world", "Grüße 東京 🚀" * 40])
    finally:
        if previous is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
    if min(cosines.values()) < MIN_COSINE:
        raise ModelError(f"fixture graph disagrees with sentence-transformers: {cosines}")
    return {
        "bundle": str(out),
        "fingerprint": manifest["fingerprint"],
        "bytes": {path.name: path.stat().st_size for path in sorted(out.iterdir())},
        "smoke_parity_min_cosine": cosines,
        "fused_operators": fused,
        **timings,
    }
