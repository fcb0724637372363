"""Fused transformer kernels in a bundle graph, written once by the worker, not at every start.

The dynamo exporter writes every attention as about 20 small nodes (reshapes, transposes, two
MatMuls, a softmax and a NaN guard) and GELU as five; onnxruntime's own transformer optimizer does
not recognise these opset-18 patterns. onnxscript's ORT fusion rules do, so :func:`fuse_graph`
applies the ones that pay on the CPU:

- ``MultiHeadAttention`` (``com.microsoft``) for each attention, with the query/key/value
  biases folded in; the query, key, value and output projections **stay separate** ``MatMul``
  nodes with constant weights, so that :mod:`qembed_worker.weights.int8_graph` can still rewrite
  every linear layer (onnxscript's last step, packing the three projections into one ``Attention``
  weight, is left out on purpose);
- ``BiasGelu`` for the FFN's bias + GELU.

It leaves out ``SkipLayerNormalization``: its CPU kernel sums each row serially and divides per
element, and ran about 6 times slower than the ``Add`` + ``LayerNormalization`` it replaces
(4.1 against 0.7 ms on a 32 x 80 x 384 batch, one thread). For the same reason the service
and the worker run sessions at onnxruntime's ``basic`` optimization level, which does not
re-create that fusion (docs/encoder-quantization.md).

The rules come from onnxscript (pinned in requirements.lock). Export checks the fused graph
against sentence-transformers like any other (cosine >= 0.9999), so a rule that changed the
function would stop the export rather than ship.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# Contrib operators that the fusions introduce; counted in the export summary.
FUSED_OPS = ("MultiHeadAttention", "BiasGelu")


def fuse_graph(model: Any) -> tuple[Any, dict[str, int]]:
    """Return a copy of an exported ``onnx.ModelProto`` with fused attention and GELU.

    Args:
        model: The graph from :func:`qembed_worker.export.exporter.export_onnx` (opset 18-22).

    Returns:
        ``(fused model, {fused op type: count})``.
    """
    import onnx
    import onnx_ir as ir
    import onnx_ir.passes.common as passes
    from onnxscript.optimizer import optimize
    from onnxscript.rewriter import rewrite
    from onnxscript.rewriter.ort_fusions import ORT_PATTERN_REWRITE_RULES, shape_optimization
    from onnxscript.rewriter.ort_fusions.bias_gelu import fuse_bias_gelu
    from onnxscript.rewriter.ort_fusions.erfgelu import fuse_erfgelu
    from onnxscript.rewriter.ort_fusions.gelu import fuse_gelu
    from onnxscript.rewriter.ort_fusions.mha import fuse_mha1, fuse_mha2
    from onnxscript.rewriter.ort_fusions.mha_bias import fuse_mha_bias
    from onnxscript.rewriter.ort_fusions.mha_scale import fuse_mha_scale
    from onnxscript.rewriter.ort_fusions.sdpa import fuse_sdpa

    assert isinstance(model, onnx.ModelProto)
    graph = ir.from_proto(model)
    # What onnxscript's optimize_for_ort does before its fusions: shapes, constant folding.
    passes.ShapeInferencePass()(graph)
    optimize(graph)
    shape_optimization.rules.apply_to_model(graph)
    optimize(graph)
    fuse_erfgelu(graph)
    passes.CommonSubexpressionEliminationPass()(graph)
    # The SDPA pattern adds nodes whose shapes the MHA patterns need.
    fuse_sdpa(graph, apply_shape_inference=True)
    if fuse_mha1(graph) + fuse_mha2(graph):
        fuse_mha_scale(graph)
        fuse_mha_bias(graph)
    fuse_gelu(graph)
    fuse_bias_gelu(graph)
    optimize(graph)
    rewrite(graph, ORT_PATTERN_REWRITE_RULES)
    passes.LiftConstantsToInitializersPass(lift_all_constants=False, size_limit=1)(graph)
    passes.RemoveInitializersFromInputsPass()(graph)
    passes.ShapeInferencePass()(graph)
    fused = ir.to_proto(graph)
    counts = Counter(node.op_type for node in fused.graph.node)
    return fused, {op: counts[op] for op in FUSED_OPS}
