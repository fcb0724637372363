"""Int8 linear layers in an exported bundle graph: the per-token rewrite and ORT dynamic PTQ.

Two ways to give ``model.onnx`` int8 weights, both touching only the *linear* MatMuls (a
MatMul whose second input is a constant 2-D float weight, i.e. an ``nn.Linear``; attention's
activation-by-activation products stay float32):

- :func:`rewrite_per_token` (method ``per-token``): each linear becomes
  ``x → per-token 7-bit codes → MatMulIntegerToFloat(int8 weight, weight scales) → * token
  scale``, the numerics that :mod:`qembed_worker.weights.fake_quant` fake-quantizes during
  training. Weights: per output channel (or per tensor) symmetric int8, ``scale = max|w| / 127``,
  ``q = clamp(round(w / scale), ±127)``.
  Activations: per token (one row of the last axis), symmetric, ``scale = max|x| / 63``, codes in
  ``[-63, 63]`` fed to the integer product as ``uint8`` with zero point 64 (``[1, 127]``). Each
  token is quantized from its own values only, so a text embeds the same alone and in any batch.
- :func:`quantize_dynamic_ort` (method ``dynamic``): onnxruntime's ``quantize_dynamic``
  (``DynamicQuantizeLinear``: one uint8 scale and zero point for the whole activation tensor,
  i.e. the whole batch, padding included) with per-channel or per-tensor 7-bit weights
  (``reduce_range``, exact on every CPU for the reason below); kept for comparisons.

**Why 7-bit activation codes: exact integer products on every CPU.** onnxruntime multiplies
uint8 activations by int8 weights with whatever its CPU supports. With VNNI (``vpdpbusd``) or
ARM's dot-product instructions every product is summed into 32 bits. Without VNNI (AVX2,
AVX-512BW, SSE4.1), ``vpmaddubsw`` first adds *pairs* of products into a saturating int16:
``a0*b0 + a1*b1`` with the raw uint8 ``a`` (the zero point is subtracted afterwards). Full
8-bit codes with zero point 128 reach ``2 * 255 * 127 = 64770`` and were clipped to 32767: up
to 2.2 off on 7 % of the outputs of a test layer on an AVX2 machine. Raw activation codes in
``[0, 127]`` bound every pair by ``2 * 127 * 127 = 32258 < 32767``, so no kernel path can
saturate (ARM without dot-product wraps only for two ``-128 * -128`` products; weights never
use -128). onnxruntime's ``reduce_range`` makes the weights 7-bit instead; on all-MiniLM-L6-v2
7-bit activations kept more of the float32 encoder (mean cosine 0.9985 against 0.9981, 400
msmarco passages; 8-bit codes: 0.9993, exact only on VNNI CPUs). docs/encoder-quantization.md
has the figures.

Rounding is round-half-to-even on both sides (``torch.round`` and ONNX ``QuantizeLinear``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Symmetric int8 weight range; -128 is left out so that the grid is symmetric around 0 (as
# torchao's symmetric int8 and onnxruntime's symmetric weights do).
W_QMAX = 127
# Activation codes: symmetric [-63, 63], fed to MatMulInteger as uint8 code + 64 in [1, 127], the
# range that keeps every pair of products below int16 saturation (module docstring).
ACT_QMAX = 63
ACT_ZERO_POINT = 64
# The largest raw uint8 activation code any rewritten graph feeds to MatMulInteger.
ACT_RAW_MAX = 127
# Floor on a scale, so that an all-zero row quantizes to zeros instead of dividing by zero.
MIN_SCALE = 1e-12
# Inputs that are GELU outputs are never below GELU's minimum (-0.16997 for the erf form,
# about -0.1700 for the tanh approximation): they are quantized as uint8 codes with a fixed zero
# point, nearly twice the resolution of symmetric codes for these one-sided values.
GELU_FLOOR = 0.17
FLOOR_ZERO_POINT = 8
# scale = max(max(x) / (127 - 8), 0.17 / 8), both float32 divisions (as in PyTorch): codes
# round(x / scale) + 8 stay in [0, 127].
FLOOR_QMAX = ACT_RAW_MAX - FLOOR_ZERO_POINT
FLOOR_MIN_SCALE = float(np.float32(GELU_FLOOR) / np.float32(FLOOR_ZERO_POINT))
ROLES = ("attention", "ffn_in", "ffn_out")
# SmoothQuant (see smoothing_factors): migration strength and the roles smoothed by default.
# 0.85 rather than SmoothQuant's usual 0.5: activations get 7-bit codes and weights 8-bit ones,
# so more of the range is moved into the weights; also, weight codes are computed once while
# activation codes are recomputed at run time, where float32 differences between runtimes can
# flip a rounding, and finer activation steps mean fewer flips. On all-MiniLM-L6-v2 (400
# msmarco passages) 0.75 / 0.85 / 0.9 gave mean cosines 0.99842 / 0.99848 / 0.99845 to the
# float32 encoder and minimums 0.9956 / 0.9969 / 0.9973.
SMOOTH_BETA = 0.85
SMOOTH_ROLES = ("attention", "ffn_in")
_GELU_OPS = ("Erf", "Tanh", "Gelu", "FastGelu", "BiasGelu")
METHODS = ("per-token", "dynamic")
_PREFIX = "qembed_int8"
CONTRIB_DOMAIN = "com.microsoft"
# The operator each rewritten linear layer's integer product runs in.
INT8_MATMUL = "MatMulIntegerToFloat"


@dataclass(frozen=True)
class LinearSite:
    """A linear MatMul of the graph (constant 2-D weight as its second input).

    Attributes:
        index: Position among the graph's linear MatMuls, in node order.
        node: The MatMul node's name (may be empty).
        input: The activation input's name (query, key and value share theirs).
        output: The MatMul's output name (unique in the graph; identifies the site).
        weight: The weight initializer's name (shape ``[in, out]``).
        shape: ``(in_features, out_features)``.
        role: ``attention`` (square: query/key/value/output), ``ffn_in`` (widening) or
            ``ffn_out`` (narrowing), from the weight's shape.
        gelu_input: The input is computed by a GELU (an ``Erf``/``Tanh``/``Gelu`` node at
            most four nodes up), so it is never below :data:`GELU_FLOOR`.
    """

    index: int
    node: str
    input: str
    output: str
    weight: str
    shape: tuple[int, int]
    role: str
    gelu_input: bool = False


def _role(shape: tuple[int, int]) -> str:
    rows, cols = shape
    if rows == cols:
        return "attention"
    return "ffn_in" if cols > rows else "ffn_out"


def linear_sites(model: object) -> list[LinearSite]:
    """List the graph's linear MatMuls: second input a 2-D float initializer.

    Args:
        model: An ``onnx.ModelProto``.

    Returns:
        The sites in node order.
    """
    import onnx

    assert isinstance(model, onnx.ModelProto)
    initializers = {init.name: init for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}

    def fed_by_gelu(name: str, depth: int = 4) -> bool:
        node = producers.get(name)
        if node is None or depth == 0:
            return False
        if node.op_type in _GELU_OPS:
            return True
        return any(fed_by_gelu(i, depth - 1) for i in node.input if i not in initializers)

    sites: list[LinearSite] = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2:
            continue
        init = initializers.get(node.input[1])
        if init is None or len(init.dims) != 2 or init.data_type != onnx.TensorProto.FLOAT:
            continue
        shape = (int(init.dims[0]), int(init.dims[1]))
        sites.append(
            LinearSite(
                index=len(sites),
                node=node.name,
                input=node.input[0],
                output=node.output[0],
                weight=init.name,
                shape=shape,
                role=_role(shape),
                gelu_input=fed_by_gelu(node.input[0]),
            )
        )
    return sites


def quantize_weight(weight: np.ndarray, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization of a MatMul weight ``[in, out]``, per output column.

    Pure float32 element-wise arithmetic (maximum, division, rounding): the same bits on every
    machine.

    The arithmetic is float32 throughout and matches
    :func:`qembed_worker.weights.fake_quant.fake_quantize_weight` bit for bit (same operations on
    the transposed ``nn.Linear`` weight).

    Args:
        weight: float32 ``[in_features, out_features]``.
        per_channel: One scale per output column; otherwise one for the whole tensor.

    Returns:
        ``(codes, scales)``: int8 ``[in, out]`` and float32 ``[out]`` (or ``[1]``).
    """
    w = np.asarray(weight, dtype=np.float32)
    amax = np.abs(w).max(axis=0) if per_channel else np.abs(w).max().reshape(1)
    scale = np.maximum(amax.astype(np.float32) / np.float32(W_QMAX), np.float32(MIN_SCALE))
    scale = scale.astype(np.float32)
    codes = np.clip(np.round(w / scale), -W_QMAX, W_QMAX).astype(np.int8)
    return codes, scale


def inverse(alpha: np.ndarray) -> np.ndarray:
    """``1 / alpha`` in float32: the one array both PyTorch and the graph multiply ``x`` by."""
    return (np.float32(1) / np.asarray(alpha, dtype=np.float32)).astype(np.float32)


def smoothing_factors(
    sites: Sequence[LinearSite],
    weights: dict[str, np.ndarray],
    activation_max: dict[str, np.ndarray],
    *,
    beta: float = SMOOTH_BETA,
    roles: Iterable[str] = SMOOTH_ROLES,
) -> dict[int, np.ndarray]:
    """SmoothQuant factors: move activation outliers into the weights before quantizing.

    The linear layer ``x @ W`` becomes ``(x / alpha) @ (alpha[:, None] * W)``, equal in exact
    arithmetic, with ``alpha_j = max|x_j| ** beta / max|W_j,:| ** (1 - beta)`` per input channel
    ``j``. A few channels of a transformer's hidden states are 10-50 times larger than the rest;
    dividing them down lets the per-token scale resolve the other channels. Layers that share
    an input (query, key, value) share one ``alpha`` (the weight maximum is taken over all of
    them), so the graph divides that input once. GELU-fed layers are never smoothed (their
    fixed-zero-point grid needs the GELU floor).

    Args:
        sites: The graph's linear sites.
        weights: ``{initializer name: [in, out] float32}`` for the sites' weights.
        activation_max: ``{input name: per-channel max|x|}`` over calibration texts, in float64
            (:func:`qembed_worker.inference.float64_graph.channel_maxima`): ``alpha`` is computed in
            float64 and rounded to float32 once, so it is the same on every machine.
        beta: Migration strength, 0 (none) to 1 (all of it into the weights).
        roles: Which roles to smooth.

    Returns:
        ``{site index: alpha}`` (float32 ``[in]``), the same array for sites sharing an input.
    """
    chosen = set(roles)
    groups: dict[str, list[LinearSite]] = {}
    for site in sites:
        if site.role in chosen and not site.gelu_input:
            groups.setdefault(site.input, []).append(site)
    factors: dict[int, np.ndarray] = {}
    for name, group in groups.items():
        w_max = np.max([np.abs(weights[site.weight]).max(axis=1) for site in group], axis=0)
        # float64 throughout: numpy's float32 power has CPU-specific (SIMD) implementations
        # that differ in the last bit.
        w_max = w_max.astype(np.float64)
        x_max = np.asarray(activation_max[name], dtype=np.float64)
        alpha = np.maximum(x_max, 1e-5) ** beta / np.maximum(w_max, 1e-5) ** (1 - beta)
        alpha32 = alpha.astype(np.float32)
        for site in group:
            factors[site.index] = alpha32
    return factors


def _select(sites: Sequence[LinearSite], exclude: Iterable[str]) -> list[LinearSite]:
    excluded = set(exclude)
    unknown = excluded - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; use {ROLES}")
    return [site for site in sites if site.role not in excluded]


def rewrite_per_token(
    model: object,
    *,
    per_channel: bool = True,
    exclude: Iterable[str] = (),
    gelu_floor: bool = True,
    smoothing: dict[int, np.ndarray] | None = None,
) -> tuple[object, list[LinearSite]]:
    """Replace the linear MatMuls by per-token int8 subgraphs (:data:`INT8_MATMUL`).

    Args:
        model: An ``onnx.ModelProto`` (not modified).
        per_channel: Per output channel weight scales (otherwise per tensor).
        exclude: Roles (:data:`ROLES`) to leave in float32.
        gelu_floor: Quantize GELU outputs (``LinearSite.gelu_input``) as uint8 with the fixed
            zero point :data:`FLOOR_ZERO_POINT` and ``scale = max(max(x) / 239, 0.17 / 16)``
            instead of symmetric int8.
        smoothing: ``{site index: alpha}`` from :func:`smoothing_factors`: the input is
            multiplied by :func:`inverse` ``(alpha)`` (once per shared input) and the weight
            by ``alpha`` before quantization.

    Returns:
        The new model and the sites that were quantized.
    """
    import onnx
    from onnx import helper, numpy_helper

    assert isinstance(model, onnx.ModelProto)
    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph
    sites = _select(linear_sites(new), exclude)
    initializers = {init.name: init for init in graph.initializer}
    constants = {
        f"{_PREFIX}_axes": np.array([-1], dtype=np.int64),
        f"{_PREFIX}_qmax": np.array(ACT_QMAX, dtype=np.float32),
        f"{_PREFIX}_min_scale": np.array(MIN_SCALE, dtype=np.float32),
        f"{_PREFIX}_one": np.array(1, dtype=np.float32),
        f"{_PREFIX}_zero_point": np.array(ACT_ZERO_POINT, dtype=np.uint8),
        f"{_PREFIX}_floor_qmax": np.array(FLOOR_QMAX, dtype=np.float32),
        f"{_PREFIX}_floor_min_scale": np.array(FLOOR_MIN_SCALE, dtype=np.float32),
        f"{_PREFIX}_floor_zero_point": np.array(FLOOR_ZERO_POINT, dtype=np.uint8),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    c = {key.removeprefix(f"{_PREFIX}_"): key for key in constants}

    by_output = {site.output: site for site in sites}
    smoothing = smoothing or {}
    smoothed_inputs: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        site = by_output.get(node.output[0]) if node.op_type == "MatMul" else None
        if site is None:
            nodes.append(node)
            continue
        p = f"{_PREFIX}_{site.index}"
        weight = numpy_helper.to_array(initializers[site.weight])
        x, y = node.input[0], node.output[0]
        alpha = smoothing.get(site.index)
        if alpha is not None:
            weight = weight * np.asarray(alpha, dtype=np.float32)[:, None]
            if x not in smoothed_inputs:
                # One division per input: query, key and value read the same smoothed tensor.
                graph.initializer.append(numpy_helper.from_array(inverse(alpha), f"{p}_inv_alpha"))
                nodes.append(
                    helper.make_node("Mul", [x, f"{p}_inv_alpha"], [f"{p}_xa"], name=f"{p}_xa")
                )
                smoothed_inputs[x] = f"{p}_xa"
            x = smoothed_inputs[x]
        codes, scales = quantize_weight(weight, per_channel)
        graph.initializer.extend(
            [numpy_helper.from_array(codes, f"{p}_w"), numpy_helper.from_array(scales, f"{p}_ws")]
        )
        if gelu_floor and site.gelu_input and alpha is None:
            # Codes round(x / s) + 8 in [0, 127]; GELU outputs >= -0.17 >= -8 * s.
            zero_point = c["floor_zero_point"]
            nodes += [
                helper.make_node(
                    "ReduceMax", [x, c["axes"]], [f"{p}_amax"], name=f"{p}_amax", keepdims=1
                ),
                helper.make_node(
                    "Div", [f"{p}_amax", c["floor_qmax"]], [f"{p}_s0"], name=f"{p}_s0"
                ),
                helper.make_node(
                    "Max", [f"{p}_s0", c["floor_min_scale"]], [f"{p}_s"], name=f"{p}_s"
                ),
            ]
        else:
            # Codes round(x / s) + 64 in [1, 127]: the 7-bit code as MatMulInteger's uint8
            # operand with zero point 64 (|x / s| <= 63 by construction).
            zero_point = c["zero_point"]
            nodes += [
                helper.make_node("Abs", [x], [f"{p}_abs"], name=f"{p}_abs"),
                helper.make_node(
                    "ReduceMax",
                    [f"{p}_abs", c["axes"]],
                    [f"{p}_amax"],
                    name=f"{p}_amax",
                    keepdims=1,
                ),
                helper.make_node("Div", [f"{p}_amax", c["qmax"]], [f"{p}_s0"], name=f"{p}_s0"),
                helper.make_node("Max", [f"{p}_s0", c["min_scale"]], [f"{p}_s"], name=f"{p}_s"),
            ]
        nodes += [
            helper.make_node("Div", [x, f"{p}_s"], [f"{p}_xs"], name=f"{p}_xs"),
            # Round half to even, add the zero point, saturate to uint8.
            helper.make_node(
                "QuantizeLinear", [f"{p}_xs", c["one"], zero_point], [f"{p}_xq"], name=f"{p}_xq"
            ),
            # The exact integer product, converted and times the weight scales in one kernel
            # (onnxruntime's MatMulInteger + Cast + Mul, about 4 % faster on the whole encoder).
            helper.make_node(
                INT8_MATMUL,
                [f"{p}_xq", f"{p}_w", c["one"], f"{p}_ws", zero_point],
                [f"{p}_y0"],
                name=f"{p}_matmul",
                domain=CONTRIB_DOMAIN,
            ),
            helper.make_node("Mul", [f"{p}_y0", f"{p}_s"], [y], name=f"{p}_y"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    if sites and not any(o.domain == CONTRIB_DOMAIN for o in new.opset_import):
        new.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    # Drop what no node reads any more: the float weights and the unused constants.
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(new)
    return new, sites


def quantize_dynamic_ort(
    source: Path, target: Path, *, per_channel: bool = True, exclude: Iterable[str] = ()
) -> list[LinearSite]:
    """Quantize the linear MatMuls with onnxruntime's ``quantize_dynamic`` (int8 weights).

    Args:
        source: The float32 ``model.onnx``.
        target: Where to write the quantized model.
        per_channel: Per output channel weight scales.
        exclude: Roles (:data:`ROLES`) to leave in float32.

    Returns:
        The sites that were quantized.
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    all_sites = linear_sites(model)
    sites = _select(all_sites, exclude)
    chosen = {site.node for site in sites}
    # The attention MatMuls (both inputs activations) are left alone by MatMulConstBOnly; the
    # excluded linears are named explicitly.
    skipped = [node.name for node in model.graph.node if node.op_type == "MatMul"]
    skipped = [name for name in skipped if name not in chosen]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" is advice for CNNs
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            # 7-bit weights: with full uint8 activations, pairs of products stay below int16
            # saturation (2 * 255 * 64) on CPUs without VNNI.
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=skipped,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
    return sites
