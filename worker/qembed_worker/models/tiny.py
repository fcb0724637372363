"""The tiny random-weight sentence-transformers model behind the test fixture bundle.

Built from a seed (its weights are stored nowhere), with all-MiniLM-L6-v2's tokenizer.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

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
# The same sizes as an MPNet (relative position buckets, no token types), for the tests that
# check the exporter on a second architecture without all-mpnet-base-v2's 438 MB of weights.
TINY_MPNET = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 130,
}
TINY_MAX_TOKENS = 128
TINY_PROMPTS = {"query": "query: ", "document": "passage: "}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def build_tiny_model(folder: Path, tokenizer_dir: Path, architecture: str = "bert") -> Path:
    """Write the tiny sentence-transformers model (seeded random BERT) into ``folder``.

    The tokenizer is all-MiniLM-L6-v2's, so token ids are realistic and the vocabulary is the
    real one; only the weights are random.

    Args:
        folder: An empty folder.
        tokenizer_dir: A folder holding all-MiniLM-L6-v2's tokenizer files.
        architecture: ``bert`` (the fixture's model) or ``mpnet`` (the same sizes as an MPNet).

    Returns:
        ``folder``.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True)
    torch.manual_seed(TINY_SEED)
    if architecture == "bert":
        transformer_model = BertModel(BertConfig(**TINY_BERT))
    elif architecture == "mpnet":
        transformer_model = MPNetModel(MPNetConfig(**TINY_MPNET))
    else:
        raise ValueError(f"no tiny {architecture!r} model (bert, mpnet)")
    transformer_model.eval().save_pretrained(hf_dir)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, hf_dir / name)
    transformer = Transformer(str(hf_dir), max_seq_length=TINY_MAX_TOKENS)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()], prompts=dict(TINY_PROMPTS), device="cpu"
    )
    model_dir = folder / "model"
    model.save(str(model_dir))
    shutil.rmtree(hf_dir)
    return model_dir


def tiny_model_folder(tokenizer_dir: Path) -> Path:
    """Build the tiny model in a temporary folder removed at exit, and return its path."""
    root = Path(tempfile.mkdtemp(prefix="qembed-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    return build_tiny_model(root, tokenizer_dir)
