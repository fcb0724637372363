"""Int8 linear layers in ONNX: weight codes, the per-token rewrite, PTQ bundles."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from qembed_worker.bundle.manifest import check_bundle, fingerprint_of, read_manifest
from qembed_worker.calibration.ranges import CalibrationOptions
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.weights.fake_quant import (
    fake_quantize_gelu_output,
    fake_quantize_per_token,
    fake_quantize_weight,
)
from qembed_worker.weights.int8_graph import (
    ACT_QMAX,
    ACT_RAW_MAX,
    FLOOR_MIN_SCALE,
    FLOOR_QMAX,
    FLOOR_ZERO_POINT,
    INT8_MATMUL,
    W_QMAX,
    linear_sites,
    quantize_weight,
    rewrite_per_token,
)
from qembed_worker.weights.ptq import quantize_weights_bundle

from .conftest import TINY_BUNDLE


def test_weight_codes_are_symmetric_per_output_channel() -> None:
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(48, 16)) * rng.uniform(0.01, 3, size=16)).astype(np.float32)
    codes, scales = quantize_weight(w)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    assert scales.shape == (16,)
    # Every output column uses the full symmetric range, never -128.
    assert np.abs(codes.astype(np.int32)).max(axis=0).tolist() == [W_QMAX] * 16
    assert codes.min() >= -W_QMAX
    assert np.all(np.abs(codes * scales - w) <= scales / 2 + 1e-7)
    codes_t, scales_t = quantize_weight(w, per_channel=False)
    assert scales_t.shape == (1,)
    assert np.abs(codes_t.astype(np.int32)).max() == W_QMAX


@pytest.mark.cpu
def test_torch_fake_quantization_reproduces_the_onnx_weight_codes_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(24, 40)).astype(np.float32)  # nn.Linear layout [out, in]
    codes, scales = quantize_weight(w.T)  # MatMul layout [in, out]
    fake = fake_quantize_weight(torch.from_numpy(w)).numpy()
    assert np.array_equal(fake, (codes.T.astype(np.float32) * scales[:, None]))


def test_straight_through_estimator_passes_gradients_unchanged() -> None:
    torch.manual_seed(0)
    for quantize in (fake_quantize_weight, fake_quantize_per_token, fake_quantize_gelu_output):
        x = torch.randn(5, 32).abs().requires_grad_()
        upstream = torch.randn(5, 32)
        (quantize(x) * upstream).sum().backward()
        assert x.grad is not None
        # (1 / s) * s is 1 up to float32 rounding; nothing is zeroed, not even the row maximum.
        torch.testing.assert_close(x.grad, upstream, rtol=1e-6, atol=0, msg=quantize.__name__)


def test_per_token_activations_depend_only_on_their_own_row() -> None:
    x = torch.randn(3, 7, 64)
    alone = fake_quantize_per_token(x[1:2, 2:3])
    assert torch.equal(fake_quantize_per_token(x)[1:2, 2:3], alone)
    # A row's largest magnitude is kept exactly (it defines the scale), on a 7-bit grid.
    q = fake_quantize_per_token(x)
    assert torch.allclose(q.abs().amax(-1), x.abs().amax(-1), rtol=1e-6)
    scale = x.abs().amax(-1, keepdim=True) / ACT_QMAX
    assert torch.allclose(q / scale, (q / scale).round(), atol=1e-4)


def test_gelu_outputs_use_the_unsigned_grid_with_zero_point_8() -> None:
    x = torch.nn.functional.gelu(torch.linspace(-6, 6, 200)).reshape(2, 100)
    scale = torch.clamp(x.amax(-1, keepdim=True) / FLOOR_QMAX, min=FLOOR_MIN_SCALE)
    codes = fake_quantize_gelu_output(x) / scale
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.min() >= -FLOOR_ZERO_POINT
    assert codes.max() <= ACT_RAW_MAX - FLOOR_ZERO_POINT + 1e-4
    # Roughly twice the resolution of symmetric int8 for these one-sided values.
    err_floor = (fake_quantize_gelu_output(x) - x).abs().max()
    err_symmetric = (fake_quantize_per_token(x) - x).abs().max()
    assert err_floor < 0.6 * err_symmetric


def _linear_graph(weight: np.ndarray, bias: np.ndarray, gelu: bool) -> onnx.ModelProto:
    """X -> [Gelu as Erf] -> MatMul -> Add, with unnamed nodes (names are not identities)."""
    k, n = weight.shape
    nodes = []
    source = "x"
    if gelu:
        nodes += [
            helper.make_node("Div", ["x", "sqrt2"], ["xd"]),
            helper.make_node("Erf", ["xd"], ["erf"]),
            helper.make_node("Add", ["erf", "one"], ["erf1"]),
            helper.make_node("Mul", ["x", "erf1"], ["xm"]),
            helper.make_node("Mul", ["xm", "half"], ["g"]),
        ]
        source = "g"
    nodes += [
        helper.make_node("MatMul", [source, "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(np.array(np.sqrt(2), np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@pytest.mark.cpu
@pytest.mark.parametrize("gelu", [False, True])
def test_int8_graph_computes_what_the_fake_quantized_linear_computes(gelu: bool) -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(scale=0.1, size=(64, 48)).astype(np.float32)
    b = rng.normal(size=48).astype(np.float32)
    x = (rng.normal(size=(3, 11, 64)) * rng.uniform(0.1, 5, size=64)).astype(np.float32)
    model, sites = rewrite_per_token(_linear_graph(w, b, gelu))
    assert [site.gelu_input for site in sites] == [gelu]
    ops = [node.op_type for node in model.graph.node]
    assert INT8_MATMUL in ops and "MatMul" not in ops
    assert "W" not in {init.name for init in model.graph.initializer}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_y,) = session.run(None, {"x": x})
    xt = torch.from_numpy(x)
    if gelu:
        xt = torch.nn.functional.gelu(xt)
        quantized = fake_quantize_gelu_output(xt)
    else:
        quantized = fake_quantize_per_token(xt)
    weight = fake_quantize_weight(torch.from_numpy(w.T.copy()))
    torch_y = torch.nn.functional.linear(quantized, weight, torch.from_numpy(b)).numpy()
    assert np.all(np.abs(onnx_y - torch_y) <= _rounding_bound(quantized, weight, b))


def _rounding_bound(x: torch.Tensor, weight: torch.Tensor, bias: np.ndarray) -> np.ndarray:
    """How far the int8 graph and the fake-quantized float32 linear may differ, per output.

    Both compute ``sum_i x_i w_i + b`` from the same codes and scales. The graph's integer sum is
    exact (no saturation: that is what is tested), then it rounds at most 4 times (int32 to
    float, two scale products, the bias). PyTorch rounds each dequantized ``x_i`` and ``w_i`` once
    and sums K products in float32, which errs by at most ``gamma_K * sum |x_i w_i|`` with
    ``gamma_K = K u / (1 - K u)`` (Higham, Accuracy and Stability of Numerical Algorithms,
    3.1), then adds the bias. With u = 2**-24 this gives ``(K + 7) u sum|x_i w_i| + 2 u |b|``
    (with a 1 % margin for the gamma denominator). A saturated pair is off by up to 32k codes.
    """
    u = 2.0**-24
    k = weight.shape[1]
    magnitude = np.abs(x.double().numpy()) @ np.abs(weight.double().numpy()).T
    return 1.01 * ((k + 7) * u * magnitude + 2 * u * np.abs(bias.astype(np.float64)))


def test_excluded_roles_stay_float() -> None:
    model = onnx.load(str(TINY_BUNDLE / "model.onnx"))
    sites = linear_sites(model)
    assert [s.role for s in sites] == ["attention"] * 4 + ["ffn_in", "ffn_out"] + [
        "attention"
    ] * 4 + ["ffn_in", "ffn_out"]
    assert [s.gelu_input for s in sites] == [False] * 5 + [True] + [False] * 5 + [True]
    rewritten, chosen = rewrite_per_token(model, exclude=["ffn_out"])
    assert len(chosen) == 10
    assert len(linear_sites(rewritten)) == 2


def _lee_calibration(limit: int) -> CalibrationOptions:
    return CalibrationOptions(limit=limit)


@pytest.mark.parametrize("scheme", ["per-token", "dynamic"])
def test_ptq_bundle_is_valid_and_records_its_weights(tmp_path: Path, scheme: str) -> None:
    out = tmp_path / "int8"
    summary = quantize_weights_bundle(
        bundle=TINY_BUNDLE, out=out, method=scheme, calibration=_lee_calibration(64)
    )
    manifest = check_bundle(out)
    source = read_manifest(TINY_BUNDLE)
    assert manifest["fingerprint"] == fingerprint_of(out, manifest) == summary["fingerprint"]
    assert manifest["fingerprint"] != source["fingerprint"]
    weights = manifest["weights"]
    assert weights["precision"] == "int8"
    assert weights["method"] == scheme
    assert weights["per_channel"] is True
    assert weights["source_fingerprint"] == source["fingerprint"]
    assert weights["linear_layers"] == 12
    assert manifest["calibration"]["corpus"]["texts"] == 64
    assert manifest["calibration"]["min"] != source["calibration"]["min"]
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert (INT8_MATMUL if scheme == "per-token" else "MatMulInteger") in ops
    texts = json.loads((TINY_BUNDLE.parents[0] / "parity-texts.json").read_text("utf-8"))[:20]
    ours = OnnxEncoder(out, manifest["prompts"], manifest["onnx"]["inputs"])
    ref = OnnxEncoder(TINY_BUNDLE, source["prompts"], source["onnx"]["inputs"])
    a = ours.encode(texts, batch_size=8, progress=False)
    b = ref.encode(texts, batch_size=8, progress=False)
    assert float((a * b).sum(axis=1).min()) > 0.99


def test_ptq_refuses_an_int8_source_and_writing_over_the_source(tmp_path: Path) -> None:
    out = tmp_path / "int8"
    quantize_weights_bundle(bundle=TINY_BUNDLE, out=out, calibration=_lee_calibration(16))
    from qembed_worker.bundle.manifest import BundleError

    with pytest.raises(BundleError, match="float32"):
        quantize_weights_bundle(bundle=out, out=tmp_path / "again")
    with pytest.raises(BundleError, match="differ"):
        quantize_weights_bundle(bundle=TINY_BUNDLE, out=TINY_BUNDLE)


@pytest.mark.cpu
def test_per_token_int8_embeds_a_text_the_same_alone_and_in_a_batch(tmp_path: Path) -> None:
    out = tmp_path / "int8"
    quantize_weights_bundle(bundle=TINY_BUNDLE, out=out, calibration=_lee_calibration(16))
    manifest = read_manifest(out)
    encoder = OnnxEncoder(out, manifest["prompts"], manifest["onnx"]["inputs"])
    texts = ["a short one", "a much longer text " * 20, "Grüße aus München 🚀"]
    ids = encoder.tokenize(texts, "document")
    batch = encoder.run(ids)
    for row, one in enumerate(ids):
        np.testing.assert_allclose(encoder.run([one])[0], batch[row], rtol=0, atol=2e-6)


def test_smoothing_divides_each_shared_input_once_and_keeps_the_product() -> None:
    from qembed_worker.weights.int8_graph import inverse
    from qembed_worker.weights.ptq import bundle_smoothing

    factors, info = bundle_smoothing(TINY_BUNDLE, read_manifest(TINY_BUNDLE), limit=16)
    assert info["layers"] == len(factors) == 10  # all but the two GELU-fed layers
    model = onnx.load(str(TINY_BUNDLE / "model.onnx"))
    sites = linear_sites(model)
    # Query, key and value share their input and so their factors.
    assert factors[0] is factors[1] is factors[2]
    assert not any(sites[i].gelu_input for i in factors)
    rewritten, _ = rewrite_per_token(model, smoothing=factors)
    divisions = [n for n in rewritten.graph.node if n.name.endswith("_xa")]
    assert len(divisions) == 6  # per layer: q/k/v input, attention output input, FFN input
    alpha = factors[0]
    x = np.random.default_rng(0).normal(size=(4, alpha.size)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(alpha.size, 8)).astype(np.float32)
    np.testing.assert_allclose((x * inverse(alpha)) @ (w * alpha[:, None]), x @ w, rtol=1e-4)


@pytest.mark.cpu
def test_smoothed_int8_graph_computes_what_the_smoothed_fake_quantized_linear_computes() -> None:
    from qembed_worker.weights.fake_quant import Int8FakeQuantLinear

    rng = np.random.default_rng(5)
    w = rng.normal(scale=0.1, size=(64, 48)).astype(np.float32)
    b = rng.normal(size=48).astype(np.float32)
    x = rng.normal(size=(2, 9, 64)).astype(np.float32)
    x[..., 3] *= 40  # an outlier channel
    alpha = (np.abs(x).max(axis=(0, 1)) ** 0.5 / np.abs(w).max(axis=1) ** 0.5).astype(np.float32)
    model, _ = rewrite_per_token(_linear_graph(w, b, False), smoothing={0: alpha})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_y,) = session.run(None, {"x": x})
    linear = torch.nn.Linear(64, 48)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T.copy()))
        linear.bias.copy_(torch.from_numpy(b))
    layer = Int8FakeQuantLinear(linear, alpha=alpha)
    with torch.no_grad():
        torch_y = layer(torch.from_numpy(x)).numpy()
    with torch.no_grad():
        quantized = fake_quantize_per_token(torch.from_numpy(x) * layer.smooth_inverse)
        bound = _rounding_bound(quantized, layer.quantized_weight(), b)
    assert np.all(np.abs(onnx_y - torch_y) <= bound)
    # Smoothing is what makes the outlier channel affordable.
    plain, _ = rewrite_per_token(_linear_graph(w, b, False))
    plain_session = ort.InferenceSession(
        plain.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    exact = x @ w + b
    assert (
        np.abs(onnx_y - exact).mean() < np.abs(plain_session.run(None, {"x": x})[0] - exact).mean()
    )


def _pairwise_saturating(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint8 [M, K] x int8 [K, N] as x86 CPUs without VNNI compute it.

    ``vpmaddubsw`` (AVX2, AVX-512BW; ``pmaddubsw`` on SSE4.1) adds the products of adjacent k
    into a *saturating* int16, then ``vpmaddwd`` widens to int32 (onnxruntime's
    QgemmU8S8KernelAvx2 and friends).
    """
    k = a.shape[1] + a.shape[1] % 2
    a = np.pad(a.astype(np.int32), ((0, 0), (0, k - a.shape[1])))
    b = np.pad(b.astype(np.int32), ((0, k - b.shape[0]), (0, 0)))
    pairs = a[:, 0::2, None] * b[None, 0::2, :] + a[:, 1::2, None] * b[None, 1::2, :]
    return np.clip(pairs, -32768, 32767).sum(axis=1)


def _int8_operands(tmp_path: Path) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Operands of every integer product of the tiny int8 bundle, on real texts.

    Returns:
        ``(uint8 activation codes [tokens, K], int8 weights [K, N], activation zero point)``.
    """
    out = tmp_path / "int8"
    quantize_weights_bundle(bundle=TINY_BUNDLE, out=out, calibration=_lee_calibration(16))
    model = onnx.load(str(out / "model.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == INT8_MATMUL]
    model.graph.output.extend(onnx.ValueInfoProto(name=n.input[0]) for n in nodes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    manifest = read_manifest(out)
    encoder = OnnxEncoder(out, manifest["prompts"], manifest["onnx"]["inputs"])
    texts = json.loads((TINY_BUNDLE.parents[0] / "parity-texts.json").read_text("utf-8"))
    feed = encoder.feed(encoder.tokenize(texts[:16], "document"))
    codes = session.run([n.input[0] for n in nodes], feed)
    return [
        (a.reshape(-1, a.shape[-1]), inits[n.input[1]], int(inits[n.input[4]]))
        for a, n in zip(codes, nodes, strict=True)
    ]


@pytest.mark.cpu
def test_int8_operands_cannot_saturate_any_cpu_kernel(tmp_path: Path) -> None:
    for a, b, zero_point in _int8_operands(tmp_path):
        assert a.dtype == np.uint8 and b.dtype == np.int8
        # The bound that makes every pair of products fit int16: 2 * 127 * 127 = 32258.
        assert a.max() <= ACT_RAW_MAX and np.abs(b.astype(np.int32)).max() <= W_QMAX
        assert 2 * ACT_RAW_MAX * W_QMAX <= 32767
        exact = a.astype(np.int64) @ b.astype(np.int64)
        assert np.array_equal(_pairwise_saturating(a, b), exact)
        assert zero_point in (64, FLOOR_ZERO_POINT)


@pytest.mark.cpu
def test_eight_bit_activation_codes_would_saturate_without_vnni(tmp_path: Path) -> None:
    # What the graphs fed MatMulInteger before (codes + 128 in [1, 255]): the emulated AVX2
    # kernel disagrees with the exact product, as it did on a real Zen 3 CPU.
    wrong = 0
    for a, b, zero_point in _int8_operands(tmp_path):
        if zero_point != 64:
            continue
        eight_bit = np.round((a.astype(np.float64) - 64) * 127 / 63) + 128
        eight_bit = eight_bit.astype(np.uint8)
        exact = eight_bit.astype(np.int64) @ b.astype(np.int64)
        wrong += int((_pairwise_saturating(eight_bit, b) != exact).sum())
    assert wrong > 0


@pytest.mark.cpu
def test_the_int8_bundle_of_the_fixture_is_the_same_on_every_cpu(tmp_path: Path) -> None:
    # quantize-weights with its defaults (SmoothQuant maxima and the calibration of the int8
    # graph, both evaluated in float64): b70073b7ec78b76a was written on an AMD EPYC Zen 5
    # (AVX-512 + VNNI) and again under qemu-x86_64 -cpu Haswell (scripts/test-other-cpu).
    summary = quantize_weights_bundle(bundle=TINY_BUNDLE, out=tmp_path / "int8")
    assert summary["fingerprint"] == "b70073b7ec78b76a"
