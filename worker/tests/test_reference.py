import json
from pathlib import Path

import numpy as np

from qembed_worker.bundle import read_manifest
from qembed_worker.calibration import OnnxEncoder
from qembed_worker.export import cosine_rows
from qembed_worker.reference import write_reference_embeddings

from .conftest import PARITY_TEXTS, TINY_BUNDLE


def test_reference_embeddings_come_from_sentence_transformers(
    tmp_path: Path, parity_texts: list[str]
) -> None:
    out = tmp_path / "ref.json"
    write_reference_embeddings(
        bundle=TINY_BUNDLE, texts_path=PARITY_TEXTS, input_type="query", out=out
    )
    result = json.loads(out.read_text(encoding="utf-8"))
    manifest = read_manifest(TINY_BUNDLE)
    assert set(result) == {"fingerprint", "model", "input_type", "embeddings"}
    assert result["fingerprint"] == manifest["fingerprint"]
    assert result["model"] == "qembed/tiny-random-bert"
    assert result["input_type"] == "query"
    reference = np.array(result["embeddings"], dtype=np.float32)
    assert reference.shape == (len(parity_texts), 32)
    encoder = OnnxEncoder(TINY_BUNDLE, manifest["prompts"], manifest["onnx"]["inputs"])
    ours = encoder.encode(parity_texts, input_type="query", progress=False)
    assert cosine_rows(ours, reference).min() >= 0.9999
    # The prompt matters: documents embed differently.
    documents = encoder.encode(parity_texts[:5], input_type="document", progress=False)
    assert cosine_rows(documents, reference[:5]).min() < 0.9999
