"""A bundle's graph evaluated in float64: numbers that must not depend on the CPU come from here.

Calibration ranges and SmoothQuant factors are statistics of a graph's float values. Computed
with onnxruntime in float32, they differ in the last bits between processors (its kernels sum in
an order that depends on the instruction set: AVX2 and AVX-512 builds of the same graph disagree
by about 1e-7), so a bundle built on two machines got two fingerprints. Here the same graph runs
in float64 with numpy (``onnx.reference``): every machine's result agrees with the exact value to
about 1e-15 relative, and the float32 rounding of the statistics then comes out the same
everywhere unless the exact value lies within about 1e-15 relative of a float32 rounding
boundary (a chance of about 1e-8 per number; see docs/model-bundle.md).

The evaluator runs the standard operators with ``onnx.reference`` and adds the few contrib
operators that qembed's fused graphs use (``com.microsoft`` ``MultiHeadAttention``, ``BiasGelu``,
``SkipLayerNormalization``, ``MatMulIntegerToFloat``, and ``FusedMatMul``, which the fusion writes
for an attention it cannot fuse whole, such as MPNet's with its relative position bias). Integer
products run as float64 matrix products: their products and sums (below 2**53) are exact in
float64, and BLAS makes them fast. ``Erf`` and ``GatherElements`` replace slow or limited
default implementations. Any other operator outside the standard set fails loudly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def _erf(x: np.ndarray) -> np.ndarray:
    import torch

    # PyTorch's float64 erf is vectorized (4 times faster than scipy's per-element one here)
    # and, like any float64 erf, within about 1e-16 of the exact value on every CPU.
    return torch.erf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).numpy()


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _custom_ops() -> list[type]:
    """``onnx.reference`` implementations of the operators the default set lacks or runs slowly.

    Each call returns new classes with their own cache of widened weights, so a cache lives as
    long as the evaluator that uses it.
    """
    from onnx.reference.op_run import OpRun

    cache: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = {}

    def _widened(weight: np.ndarray, zero_point: np.ndarray | None) -> np.ndarray:
        """An integer weight minus its zero point(s) in float64, converted once per weight."""
        key = (id(weight), b"" if zero_point is None else zero_point.tobytes())
        cached = cache.get(key)
        if cached is None or cached[0] is not weight:
            wide = weight.astype(np.float64)
            if zero_point is not None:
                wide -= zero_point.astype(np.float64)
            cached = (weight, wide)
            cache[key] = cached
        return cached[1]

    class Erf(OpRun):
        # The default implementation calls math.erf once per element (seconds per batch).
        def _run(self, x):  # type: ignore[no-untyped-def]
            return (_erf(x).astype(x.dtype),)

    class MatMulInteger(OpRun):
        def _run(self, a, b, a_zero_point=None, b_zero_point=None):  # type: ignore[no-untyped-def]
            a64 = a.astype(np.float64)
            if a_zero_point is not None:
                a64 -= a_zero_point.astype(np.float64)
            return (np.matmul(a64, _widened(b, b_zero_point)).astype(np.int32),)

    class MatMulIntegerToFloat(OpRun):
        op_domain = "com.microsoft"

        def _run(  # type: ignore[no-untyped-def]
            self, a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None
        ):
            a64 = a.astype(np.float64)
            if a_zero_point is not None:
                a64 -= a_zero_point.astype(np.float64)
            product = np.matmul(a64, _widened(b, b_zero_point))
            out = product.astype(np.float64) * (a_scale * b_scale)
            return (out + bias if bias is not None else out,)

    class GatherElements(OpRun):
        # The default implementation uses np.choose, limited to 64 positions along the axis.
        def _run(self, data, indices, axis=None):  # type: ignore[no-untyped-def]
            axis = int(axis or 0)
            indices = np.where(indices < 0, indices + data.shape[axis], indices)
            return (np.take_along_axis(data, indices, axis=axis),)

    class BiasGelu(OpRun):
        op_domain = "com.microsoft"

        def _run(self, a, bias):  # type: ignore[no-untyped-def]
            return (_gelu(a + bias),)

    class SkipLayerNormalization(OpRun):
        op_domain = "com.microsoft"

        def _run(self, x, skip, gamma, beta=None, bias=None, epsilon=None):  # type: ignore[no-untyped-def]
            total = x + skip
            if bias is not None:
                total = total + bias
            mean = total.mean(axis=-1, keepdims=True)
            variance = ((total - mean) ** 2).mean(axis=-1, keepdims=True)
            inv_std = 1.0 / np.sqrt(variance + epsilon)
            out = (total - mean) * inv_std * gamma
            if beta is not None:
                out = out + beta
            return (out, mean, inv_std, total)

    class FusedMatMul(OpRun):
        op_domain = "com.microsoft"

        # onnx.reference passes attributes by their ONNX names.
        def _run(  # type: ignore[no-untyped-def]
            self,
            a,
            b,
            alpha=None,
            transA=None,  # noqa: N803
            transB=None,  # noqa: N803
            transBatchA=None,  # noqa: N803
            transBatchB=None,  # noqa: N803
        ):
            if transBatchA or transBatchB:
                raise NotImplementedError("FusedMatMul: transBatchA/transBatchB are not supported")
            if transA:
                a = np.swapaxes(a, -1, -2)
            if transB:
                b = np.swapaxes(b, -1, -2)
            return (np.matmul(a, b) * (1.0 if alpha is None else float(alpha)),)

    class MultiHeadAttention(OpRun):
        op_domain = "com.microsoft"

        def _run(  # type: ignore[no-untyped-def]
            self,
            query,
            key=None,
            value=None,
            bias=None,
            key_padding_mask=None,
            attention_bias=None,
            past_key=None,
            past_value=None,
            *rest,
            num_heads=None,
            scale=None,
            mask_filter_value=None,
            unidirectional=None,
        ):
            if key is None or value is None or past_key is not None or past_value is not None:
                raise NotImplementedError("MultiHeadAttention: only separate query/key/value")
            if unidirectional:
                raise NotImplementedError("MultiHeadAttention: unidirectional is not supported")
            hidden = query.shape[-1]
            if bias is not None:
                query = query + bias[:hidden]
                key = key + bias[hidden : 2 * hidden]
                value = value + bias[2 * hidden :]
            batch, length, _ = query.shape
            heads = int(num_heads)
            size = hidden // heads

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, t.shape[1], heads, size).transpose(0, 2, 1, 3)

            factor = float(scale) if scale else 1.0 / np.sqrt(size)
            scores = np.matmul(split(query), split(key).transpose(0, 1, 3, 2)) * factor
            if attention_bias is not None:
                scores = scores + attention_bias
            if key_padding_mask is not None:
                if key_padding_mask.ndim != 2:
                    raise NotImplementedError("MultiHeadAttention: key_padding_mask must be 2-D")
                filler = -10000.0 if mask_filter_value is None else float(mask_filter_value)
                scores = scores + np.where(key_padding_mask[:, None, None, :] == 0, filler, 0.0)
            scores = scores - scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights = weights / weights.sum(axis=-1, keepdims=True)
            out = np.matmul(weights, split(value)).transpose(0, 2, 1, 3)
            return (out.reshape(batch, length, hidden),)

    return [
        Erf,
        MatMulInteger,
        MatMulIntegerToFloat,
        GatherElements,
        BiasGelu,
        SkipLayerNormalization,
        FusedMatMul,
        MultiHeadAttention,
    ]


def to_float64(model: Any) -> Any:
    """Return a copy of an ``onnx.ModelProto`` whose float32 tensors, casts and types are float64.

    Integer tensors (token ids, masks, int8 weights) are unchanged, so the graph computes the
    same function with every float operation carried out in float64.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    assert isinstance(model, onnx.ModelProto)
    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph

    def widen(tensor: Any) -> Any:
        return numpy_helper.from_array(
            numpy_helper.to_array(tensor).astype(np.float64), tensor.name
        )

    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            graph.initializer[index].CopyFrom(widen(init))
    for node in graph.node:
        for attribute in node.attribute:
            if (
                attribute.type == onnx.AttributeProto.TENSOR
                and attribute.t.data_type == TensorProto.FLOAT
            ):
                attribute.t.CopyFrom(widen(attribute.t))
            elif (
                node.op_type == "Cast"
                and attribute.name == "to"
                and attribute.i == TensorProto.FLOAT
            ):
                attribute.i = TensorProto.DOUBLE
        if node.op_type == "Constant" and any(
            a.name.startswith("value_float") for a in node.attribute
        ):
            (attribute,) = node.attribute
            values = np.asarray(
                attribute.f if attribute.name == "value_float" else list(attribute.floats),
                dtype=np.float64,
            )
            del node.attribute[:]
            node.attribute.append(
                onnx.helper.make_attribute("value", numpy_helper.from_array(values))
            )
    for info in [*graph.value_info, *graph.input, *graph.output]:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.DOUBLE
    return new


class Float64Graph:
    """Runs an ONNX graph in float64 with numpy.

    Args:
        model: The ``onnx.ModelProto`` (float32, as shipped in a bundle).
    """

    def __init__(self, model: Any) -> None:
        """Convert the graph and prepare the evaluator."""
        from onnx.reference import ReferenceEvaluator

        self._evaluator = ReferenceEvaluator(to_float64(model), new_ops=_custom_ops())
        self.output_names = list(self._evaluator.output_names)

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Evaluate the graph; ``names`` may name any tensor of the graph, not only outputs."""
        from threadpoolctl import threadpool_limits

        # One BLAS thread: OpenBLAS's threads spin, and on a machine whose other cores are busy
        # (a CI job, a second build) two of them ran 3 times slower than one.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._run(names, feed)

    def _run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if names is None or set(names) <= set(self.output_names):
            return list(self._evaluator.run(names, feed))
        values = self._evaluator.run(None, feed, intermediate=True)
        assert isinstance(values, dict)
        missing = [name for name in names if name not in values]
        if missing:
            raise KeyError(f"the graph has no tensors {missing}")
        return [values[name] for name in names]


def channel_maxima(
    graph: Float64Graph, feeds: Iterable[dict[str, np.ndarray]], names: Iterable[str]
) -> dict[str, np.ndarray]:
    """Per-channel ``max|x|`` of graph tensors over batches, real tokens only, in float64.

    Args:
        graph: The float64 evaluator.
        feeds: Input batches (``attention_mask`` marks the real tokens).
        names: Tensors of shape ``[batch, sequence, channels]``.

    Returns:
        ``{name: float64 [channels]}``.
    """
    names = list(dict.fromkeys(names))
    result: dict[str, np.ndarray] = {}
    for feed in feeds:
        mask = feed["attention_mask"].astype(bool)
        for name, value in zip(names, graph.run(names, feed), strict=True):
            current = np.abs(value[mask]).max(axis=0)
            result[name] = np.maximum(result[name], current) if name in result else current
    return result
