"""Weight QAT: prepare (fake quantization, Quant-Noise), distill, convert to a matching graph."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qembed_worker.bundle.manifest import check_bundle, read_manifest
from qembed_worker.calibration.ranges import CalibrationOptions
from qembed_worker.export.exporter import cosine_rows, inspect_model, write_tokenizer
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.models.sources import load_sentence_transformer
from qembed_worker.training.teacher import model_embeddings as embed_texts
from qembed_worker.weights.convert import export_int8_onnx
from qembed_worker.weights.distill import DistillConfig, distill, distill_spans
from qembed_worker.weights.fake_quant import (
    Int8FakeQuantLinear,
    fake_quant_layers,
    fake_quantize_linears,
    fake_quantize_weight,
    float_linears,
    set_quant_noise,
    smoothing_for,
)
from qembed_worker.weights.int8_graph import linear_sites
from qembed_worker.weights.ptq import bundle_smoothing
from qembed_worker.weights.qat import weight_qat_bundle

from .conftest import TINY_BUNDLE

# The tiny model is insensitive enough that onnxruntime and PyTorch agree to float precision;
# a wrong scale, rounding or zero point anywhere shows up far above this.
TINY_PARITY = 0.99999


def test_quant_noise_quantizes_the_requested_fraction_of_output_rows() -> None:
    torch.manual_seed(0)
    layer = Int8FakeQuantLinear(nn.Linear(16, 400), quant_noise=0.25)
    full = fake_quantize_weight(layer.weight)
    assert torch.equal(layer.quantized_weight(), full)  # noise is off outside training steps
    set_quant_noise(layer, True)
    fractions = []
    for _ in range(50):
        weight = layer.quantized_weight()
        quantized_rows = (weight == full).all(dim=1)
        float_rows = (weight == layer.weight).all(dim=1)
        # Blocks are whole output rows: each row is either all quantized or all float.
        assert bool((quantized_rows | float_rows).all())
        fractions.append(float(quantized_rows.float().mean()))
    assert abs(np.mean(fractions) - 0.25) < 0.02
    set_quant_noise(layer, False)
    assert torch.equal(layer.quantized_weight(), full)


def test_quant_noise_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="quant_noise"):
        Int8FakeQuantLinear(nn.Linear(4, 4), quant_noise=1.5)


def test_prepare_wraps_every_used_linear_and_shares_the_parameters(tiny_model_dir: Path) -> None:
    model = load_sentence_transformer(tiny_model_dir)
    before = {id(p) for p in model.parameters()}
    names = fake_quantize_linears(model, quant_noise=0.5)
    assert len(names) == 12
    assert not any("pooler" in name for name in names)
    layers = fake_quant_layers(model)
    assert [layer.gelu_input for layer in layers] == [False] * 5 + [True] + [False] * 5 + [True]
    assert {id(p) for p in model.parameters()} == before
    assert fake_quantize_linears(model) == []  # already prepared
    with float_linears(model) as count:
        assert count == 12 and not fake_quant_layers(model)
    assert len(fake_quant_layers(model)) == 12


def test_spans_are_short_pieces_of_the_texts() -> None:
    texts = ["one two three four five six seven eight nine ten eleven twelve thirteen", "tiny"]
    spans = distill_spans(texts, DistillConfig(spans_per_text=3, span_words=(3, 5), seed=1))
    assert len(spans) == 6
    assert all(3 <= len(s.split()) <= 5 and s in texts[0] for s in spans[:3])
    assert spans[3:] == ["tiny"] * 3
    assert distill_spans(texts, DistillConfig(spans_per_text=3, span_words=(3, 5), seed=1)) == spans


def _parity(model, folder: Path, spec, texts: list[str], tmp: Path) -> float:
    bundle = tmp / "graph"
    bundle.mkdir()
    export_int8_onnx(model, spec, bundle / "model.onnx")
    write_tokenizer(folder / "tokenizer.json", bundle / "tokenizer.json", spec.max_tokens)
    encoder = OnnxEncoder(bundle, spec.prompts, spec.inputs)
    worst = 1.0
    for input_type in ("query", "document"):
        ours = encoder.encode(texts, input_type, batch_size=8, progress=False)
        theirs = model.encode(texts, prompt=spec.prompts[input_type], batch_size=8)
        worst = min(worst, float(cosine_rows(ours, theirs).min()))
    return worst


@pytest.mark.parametrize("smooth", [False, True])
def test_converted_onnx_matches_the_fake_quantized_model(
    tiny_model_dir: Path, parity_texts: list[str], tmp_path: Path, smooth: bool
) -> None:
    model = load_sentence_transformer(tiny_model_dir)
    spec = inspect_model(model)
    smoothing = None
    if smooth:
        factors, _ = bundle_smoothing(TINY_BUNDLE, read_manifest(TINY_BUNDLE), limit=16)
        graph_sites = linear_sites(onnx.load(str(TINY_BUNDLE / "model.onnx")))
        smoothing = smoothing_for(model, graph_sites, factors)
    fake_quantize_linears(model, smoothing=smoothing)
    assert sum(layer.alpha is not None for layer in fake_quant_layers(model)) == 10 * smooth
    # Stand-in for training: weights that are not the ones the float model was exported with.
    torch.manual_seed(3)
    with torch.no_grad():
        for layer in fake_quant_layers(model):
            layer.weight.mul_(1 + 0.2 * torch.randn_like(layer.weight))
    assert _parity(model, tiny_model_dir, spec, parity_texts, tmp_path) >= TINY_PARITY


def test_distill_moves_the_student_toward_the_teacher(tiny_model_dir: Path) -> None:
    teacher = load_sentence_transformer(tiny_model_dir)
    texts = [f"passage {i} about topic {i % 7} and more words {i * 3}" for i in range(24)]
    student = load_sentence_transformer(tiny_model_dir)
    fake_quantize_linears(student, quant_noise=0.5)
    # Push the student away first, so that distillation has something to recover.
    with torch.no_grad():
        for layer in fake_quant_layers(student):
            layer.weight.add_(0.05 * torch.randn_like(layer.weight))
    target = embed_texts(teacher, texts)
    before = float((embed_texts(student, texts) * target).sum(-1).mean())
    run = distill(
        student,
        target,
        texts,
        DistillConfig(epochs=4, batch_size=8, lr=1e-3, seed=0),
        progress=False,
    )
    after = float((embed_texts(student, texts) * target).sum(-1).mean())
    assert run["steps"] == 12
    assert after > before
    assert not any(layer.noise_active for layer in fake_quant_layers(student))


def test_weight_qat_writes_a_checked_int8_bundle(
    parity_texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QEMBED_EMBEDDING_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"text": f"text number {i} on a subject {i % 5}"}) for i in range(16)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")

    out = tmp_path / "qat"
    summary = weight_qat_bundle(
        bundle=TINY_BUNDLE,
        data=str(corpus),
        out=out,
        config=DistillConfig(max_steps=2, batch_size=8),
        quant_noise=0.5,
        parity_texts=parity_texts[:20],
        calibration=CalibrationOptions(limit=32),
        progress=False,
    )
    manifest = check_bundle(out)
    assert summary["fingerprint"] == manifest["fingerprint"]
    assert min(summary["parity_min_cosine"].values()) >= TINY_PARITY
    assert manifest["weights"]["precision"] == "int8"
    assert manifest["weights"]["method"] == "per-token"
    assert "Quant-Noise p=0.5" in manifest["weights"]["qat"]
    assert manifest["weights"]["smoothing"]["layers"] == 10
    assert manifest["weights"]["source_fingerprint"] == read_manifest(TINY_BUNDLE)["fingerprint"]
    training = manifest["training"]
    assert training["kind"] == "weight-qat" and training["steps"] == 2
    assert training["data"]["texts"] == 16 and training["data"]["spans"] == 16
    assert manifest["prompts"] == read_manifest(TINY_BUNDLE)["prompts"]
    # The teacher's embeddings are cached for the next run.
    assert len(list((tmp_path / "cache").glob("weight-qat-teacher-*.npy"))) == 1


def test_weight_qat_starts_from_a_float32_bundle_only(tmp_path: Path) -> None:
    from qembed_worker.bundle.manifest import BundleError
    from qembed_worker.weights.ptq import quantize_weights_bundle

    int8 = tmp_path / "int8"
    quantize_weights_bundle(
        bundle=TINY_BUNDLE,
        out=int8,
        calibration=CalibrationOptions(limit=8),
    )
    with pytest.raises(BundleError, match="float32"):
        weight_qat_bundle(bundle=int8, data="lee", out=tmp_path / "x", config=DistillConfig())


def test_dense_heads_stay_float_and_the_graph_still_matches(
    tiny_model_dir: Path, parity_texts: list[str], tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    base = load_sentence_transformer(tiny_model_dir)
    torch.manual_seed(0)
    model = SentenceTransformer(
        modules=[base[0], Pooling(32, pooling_mode="mean"), Dense(32, 16), Normalize()],
        prompts={"query": "q: ", "document": ""},
        device="cpu",
    ).eval()
    spec = inspect_model(model)
    names = fake_quantize_linears(model)
    assert len(names) == 12 and all(name.startswith("0.") for name in names)
    assert _parity(model, tiny_model_dir, spec, parity_texts[:20], tmp_path) >= TINY_PARITY
