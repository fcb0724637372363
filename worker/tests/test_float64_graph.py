"""The float64 evaluator behind calibration: same function as onnxruntime, wider arithmetic."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qembed_worker.bundle.manifest import read_manifest
from qembed_worker.calibration.ranges import calibration_embeddings, compute_ranges
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.inference.float64_graph import Float64Graph, to_float64

from .conftest import TINY_BUNDLE

U32 = 2.0**-24  # float32 unit roundoff


def _gamma(k: int) -> float:
    """Higham's bound on the relative error of a float32 sum of k products."""
    return k * U32 / (1 - k * U32)


def _texts(n: int) -> list[str]:
    return json.loads((TINY_BUNDLE.parents[0] / "parity-texts.json").read_text("utf-8"))[:n]


@pytest.mark.cpu
def test_the_bundle_graph_in_float64_is_onnxruntime_up_to_float32_rounding() -> None:
    manifest = read_manifest(TINY_BUNDLE)
    args = (TINY_BUNDLE, manifest["prompts"], manifest["onnx"]["inputs"])
    texts = _texts(24)
    exact = OnnxEncoder(*args, float64=True).encode(texts, batch_size=8, progress=False)
    float32 = OnnxEncoder(*args).encode(texts, batch_size=8, progress=False)
    assert exact.dtype == np.float64 and float32.dtype == np.float32
    # Bound: the tiny model chains about 10 matrix products (2 layers: query/key/value, scores,
    # weights x values, output, FFN in and out) whose inner sizes are at most 64; each errs by at
    # most gamma_64 relative (Higham 3.1) and the errors add to first order. Layer norms divide
    # by standard deviations of order 1 here, so they do not amplify. The unit-norm output
    # then differs by at most about 10 * gamma_64 (4e-5) in each component.
    assert np.abs(exact - float32).max() <= 10 * _gamma(64)
    assert np.abs(exact - float32).max() > 0  # really two computations


def _single_node(op: str, inputs, attrs: dict, domain: str = "com.microsoft") -> onnx.ModelProto:
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], domain=domain, **attrs)
    graph = helper.make_graph(
        [node],
        "one",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, inputs, strict=True)
        ],
        [onnx.ValueInfoProto(name="y")],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model


def _both(model: onnx.ModelProto, inputs) -> tuple[np.ndarray, np.ndarray]:
    feed = {f"i{k}": a for k, a in enumerate(inputs)}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnxruntime_y,) = session.run(None, feed)
    wide = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in feed.items()}
    (exact_y,) = Float64Graph(model).run(None, wide)
    return onnxruntime_y, exact_y


@pytest.mark.cpu
def test_multi_head_attention_matches_onnxruntime_kernel() -> None:
    rng = np.random.default_rng(0)
    batch, length, heads, size = 2, 7, 3, 8
    hidden = heads * size
    q, k, v = (rng.normal(size=(batch, length, hidden)).astype(np.float32) for _ in range(3))
    bias = rng.normal(size=3 * hidden).astype(np.float32)
    mask = np.zeros((batch, 1, length, length), np.float32)
    mask[1, :, :, 5:] = np.finfo(np.float32).min  # padding of the second text
    model = _single_node("MultiHeadAttention", [q, k, v, bias, mask], {"num_heads": heads})
    # key_padding_mask (input 4) is absent; the mask is attention_bias (input 5).
    node = model.graph.node[0]
    node.input[4:] = ["", "i4"]
    onnxruntime_y, exact_y = _both(model, [q, k, v, bias, mask])
    # Scores are length-8 dot products (gamma_8 relative to sum |q k|, |q k| <= about 30 here);
    # softmax and the weighted sum of values add a few roundings each: 1e-5 covers it.
    assert np.abs(onnxruntime_y - exact_y).max() <= 1e-5
    # The padded keys of the second text get no weight, in both.
    moved = v.copy()
    moved[1, 5:] += 100
    onnxruntime_moved, exact_moved = _both(model, [q, k, moved, bias, mask])
    assert np.array_equal(onnxruntime_moved[1], onnxruntime_y[1])
    assert np.abs(exact_moved[1] - exact_y[1]).max() == 0


@pytest.mark.cpu
def test_bias_gelu_and_integer_products_match_onnxruntime() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(scale=3, size=(4, 5, 16)).astype(np.float32)
    bias = rng.normal(size=16).astype(np.float32)
    onnxruntime_y, exact_y = _both(_single_node("BiasGelu", [a, bias], {}), [a, bias])
    # A few roundings of values below 10 in float32.
    assert np.abs(onnxruntime_y - exact_y).max() <= 8 * 10 * U32
    codes = rng.integers(0, 128, size=(6, 1536)).astype(np.uint8)
    weights = rng.integers(-127, 128, size=(1536, 12)).astype(np.int8)
    zero_point = np.array(64, np.uint8)
    model = _single_node("MatMulInteger", [codes, weights, zero_point], {}, domain="")
    onnxruntime_y, exact_y = _both(model, [codes, weights, zero_point])
    expected = (codes.astype(np.int64) - 64) @ weights.astype(np.int64)
    assert np.array_equal(exact_y, expected) and np.array_equal(onnxruntime_y, expected)
    scales = rng.uniform(0.01, 0.1, size=12).astype(np.float32)
    one = np.array(1, np.float32)
    inputs = [codes, weights, one, scales, zero_point]
    onnxruntime_y, exact_y = _both(_single_node("MatMulIntegerToFloat", inputs, {}), inputs)
    # The exact integer times the scale, rounded once or twice in float32.
    assert np.all(np.abs(onnxruntime_y - exact_y) <= 2 * U32 * np.abs(exact_y))


def test_float64_copy_widens_floats_and_keeps_integers() -> None:
    wide = to_float64(onnx.load(str(TINY_BUNDLE / "model.onnx")))
    kinds = {init.data_type for init in wide.graph.initializer}
    assert TensorProto.FLOAT not in kinds and TensorProto.DOUBLE in kinds
    assert {i.type.tensor_type.elem_type for i in wide.graph.input} == {TensorProto.INT64}
    casts = [n for n in wide.graph.node if n.op_type == "Cast"]
    assert all(a.i != TensorProto.FLOAT for n in casts for a in n.attribute)
    original = onnx.load(str(TINY_BUNDLE / "model.onnx"))
    first = numpy_helper.to_array(original.graph.initializer[0])
    assert np.array_equal(numpy_helper.to_array(wide.graph.initializer[0]), first)


@pytest.mark.cpu
def test_calibration_ranges_are_float64_statistics_rounded_once() -> None:
    manifest = read_manifest(TINY_BUNDLE)
    embeddings = calibration_embeddings(TINY_BUNDLE, manifest, _texts(30), progress=False)
    assert embeddings.dtype == np.float64
    lo, hi = compute_ranges(embeddings)
    assert lo.dtype == np.float32
    assert np.array_equal(lo, embeddings.min(axis=0).astype(np.float32))
    assert np.array_equal(hi, embeddings.max(axis=0).astype(np.float32))
