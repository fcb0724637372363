import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qembed_worker.bundle.manifest import read_manifest
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.qat.head import Head, apply_head_numpy, bake_head, read_heads

from .conftest import TINY_BUNDLE

TEXTS = ["a", "hello world", "quantization-aware training of a tiny head " * 8, "Grüße 東京"]


def _encode(bundle: Path, texts: list[str] = TEXTS) -> np.ndarray:
    manifest = read_manifest(TINY_BUNDLE)
    encoder = OnnxEncoder(bundle, manifest["prompts"], manifest["onnx"]["inputs"])
    return encoder.encode(texts, "query", progress=False)


def _baked(tmp_path: Path, weight: np.ndarray, bias: np.ndarray | None, **kw) -> Path:
    out = tmp_path / "baked"
    out.mkdir()
    shutil.copyfile(TINY_BUNDLE / "tokenizer.json", out / "tokenizer.json")
    bake_head(TINY_BUNDLE / "model.onnx", out / "model.onnx", weight, bias, **kw)
    return out


def _trained_head(kind: str, bias: bool) -> Head:
    torch.manual_seed(0)
    head = Head(32, kind, bias=bias)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(5):
        x = torch.nn.functional.normalize(torch.randn(16, 32), dim=-1)
        loss = (head(x)[:, :4] - 1).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


@pytest.mark.parametrize("kind", ["rotation", "linear"])
def test_the_head_starts_at_identity(kind: str) -> None:
    head = Head(32, kind, bias=True)
    weight, bias = head.matrices()
    assert np.array_equal(weight, np.eye(32, dtype=np.float32))
    assert bias is not None and not bias.any()


def test_an_identity_head_reproduces_the_original_embeddings(tmp_path: Path) -> None:
    baked = _baked(tmp_path, np.eye(32, dtype=np.float32), None)
    np.testing.assert_allclose(_encode(baked), _encode(TINY_BUNDLE), rtol=0, atol=2e-7)


@pytest.mark.parametrize(
    ("kind", "bias"), [("rotation", False), ("rotation", True), ("linear", True)]
)
def test_the_baked_head_equals_the_pytorch_head(tmp_path: Path, kind: str, bias: bool) -> None:
    head = _trained_head(kind, bias)
    weight, b = head.matrices()
    assert np.abs(weight - np.eye(32)).max() > 0.01  # the test head has really moved
    baked = _baked(tmp_path, weight, b)
    with torch.no_grad():
        expected = head(torch.from_numpy(_encode(TINY_BUNDLE))).numpy()
    np.testing.assert_allclose(_encode(baked), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        apply_head_numpy(_encode(TINY_BUNDLE), weight, b), expected, rtol=0, atol=1e-6
    )


def test_a_rotation_stays_orthogonal_while_training() -> None:
    weight, _ = _trained_head("rotation", False).matrices()
    np.testing.assert_allclose(weight @ weight.T, np.eye(32), atol=1e-5)


def test_heads_stack_on_an_already_trained_graph(tmp_path: Path) -> None:
    first = _trained_head("rotation", True)
    w1, b1 = first.matrices()
    once = _baked(tmp_path, w1, b1)
    twice = tmp_path / "twice"
    twice.mkdir()
    shutil.copyfile(TINY_BUNDLE / "tokenizer.json", twice / "tokenizer.json")
    w2 = w1.T.copy()  # undo the rotation; the bias stays
    bake_head(once / "model.onnx", twice / "model.onnx", w2, None)
    expected = apply_head_numpy(_encode(once), w2, None)
    np.testing.assert_allclose(_encode(twice), expected, rtol=0, atol=1e-6)


def test_baked_heads_are_read_back_in_the_order_they_apply(tmp_path: Path) -> None:
    assert read_heads(TINY_BUNDLE / "model.onnx") == []
    first = _trained_head("rotation", True)
    w1, b1 = first.matrices()
    once = _baked(tmp_path, w1, b1)
    w2 = np.eye(32, dtype=np.float32)[::-1].copy()
    bake_head(once / "model.onnx", tmp_path / "twice.onnx", w2, None, normalize=False)
    heads = read_heads(tmp_path / "twice.onnx")
    assert len(heads) == 2
    assert np.array_equal(heads[0][0], w1) and np.array_equal(heads[0][1], b1) and heads[0][2]
    assert np.array_equal(heads[1][0], w2) and heads[1][1] is None and not heads[1][2]
