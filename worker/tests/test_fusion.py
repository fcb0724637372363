"""Fused bundle graphs: one attention kernel per layer, linear layers left for int8."""

from collections import Counter
from pathlib import Path

import onnx
import onnxruntime as ort

from qembed_worker.export.fusion import fuse_graph
from qembed_worker.weights.int8_graph import linear_sites

from .conftest import TINY_BUNDLE


def test_the_exported_graph_runs_fused_attention_and_gelu() -> None:
    model = onnx.load(str(TINY_BUNDLE / "model.onnx"))
    ops = Counter(node.op_type for node in model.graph.node)
    # The tiny model has 2 layers: one attention and one FFN GELU each.
    assert ops["MultiHeadAttention"] == 2 and ops["BiasGelu"] == 2
    for gone in ("Softmax", "Erf", "IsNaN", "Transpose", "SkipLayerNormalization", "Attention"):
        assert ops[gone] == 0, gone
    # Query, key, value, output and both FFN projections stay plain linear MatMuls.
    assert len(linear_sites(model)) == 12 == ops["MatMul"]


def test_fusing_again_changes_nothing() -> None:
    model = onnx.load(str(TINY_BUNDLE / "model.onnx"))
    again, counts = fuse_graph(model)
    assert counts == {"MultiHeadAttention": 2, "BiasGelu": 2}
    assert Counter(n.op_type for n in again.graph.node) == Counter(
        n.op_type for n in model.graph.node
    )


def test_sessions_at_the_basic_level_keep_add_and_layer_norm(tmp_path: Path) -> None:
    # onnxruntime's extended level would fuse Add + LayerNormalization into its slow
    # SkipLayerNormalization kernel; the worker and the service run at the basic level.
    from qembed_worker.inference.encoder import session_for

    optimized = tmp_path / "optimized.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(
        str(TINY_BUNDLE / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    extended = Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    assert extended["SkipLayerNormalization"] > 0  # what the basic level avoids
    session = session_for(TINY_BUNDLE / "model.onnx")
    assert session.get_session_options().graph_optimization_level == (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    )
