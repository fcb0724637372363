import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qembed_worker.bundle.manifest import BundleError, read_manifest, write_bundle_manifest
from qembed_worker.export.exporter import cosine_rows
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.qat.head import bake_head
from qembed_worker.testing.reference import write_reference_embeddings

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


def test_a_head_bundle_is_referenced_as_the_model_followed_by_its_head(
    tmp_path: Path, parity_texts: list[str]
) -> None:
    rng = np.random.default_rng(0)
    weight, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    bundle = tmp_path / "head"
    bundle.mkdir()
    shutil.copyfile(TINY_BUNDLE / "tokenizer.json", bundle / "tokenizer.json")
    bake_head(TINY_BUNDLE / "model.onnx", bundle / "model.onnx", weight, 0.01 * rng.normal(size=32))
    manifest = read_manifest(TINY_BUNDLE)
    manifest["training"] = {"method": "qat", "mode": "head"}
    manifest = write_bundle_manifest(bundle, manifest)
    out = tmp_path / "ref.json"
    write_reference_embeddings(bundle=bundle, texts_path=PARITY_TEXTS, input_type="query", out=out)
    reference = np.array(json.loads(out.read_text("utf-8"))["embeddings"], dtype=np.float32)
    encoder = OnnxEncoder(bundle, manifest["prompts"], manifest["onnx"]["inputs"])
    ours = encoder.encode(parity_texts, input_type="query", progress=False)
    assert cosine_rows(ours, reference).min() >= 0.9999
    manifest["training"]["mode"] = "full"
    write_bundle_manifest(bundle, manifest)
    with pytest.raises(BundleError, match="full mode"):
        write_reference_embeddings(
            bundle=bundle, texts_path=PARITY_TEXTS, input_type="query", out=out
        )
