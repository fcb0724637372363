"""Weight QAT's conversion: the trained fake-quantized model as the int8 graph that matches it.

The trained float weights are exported to ONNX and every linear MatMul is rewritten by
:func:`qembed_worker.weights.int8_graph.rewrite_per_token`, which quantizes the weights with the
same arithmetic as :mod:`qembed_worker.weights.fake_quant` (bit-identical int8 codes and scales)
and the activations per token with the same rounding, so that onnxruntime computes what the
fake-quantized model computed (checked on the parity texts: cosine >= 0.999).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qembed_worker.bundle.manifest import MODEL_FILE, TOKENIZER_FILE
from qembed_worker.bundle.publish import announce, publish
from qembed_worker.calibration.ranges import CalibrationOptions, calibrate
from qembed_worker.export.exporter import (
    SMOKE_TEXTS,
    GraphSpec,
    export_onnx,
    parity,
    tokenizer_source,
    write_tokenizer,
)
from qembed_worker.models.sources import ModelError
from qembed_worker.weights.fake_quant import fake_quant_layers, float_linears, set_quant_noise
from qembed_worker.weights.int8_graph import linear_sites, rewrite_per_token
from qembed_worker.weights.ptq import weights_manifest

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MIN_PARITY_COSINE = 0.999


def export_int8_onnx(
    model: SentenceTransformer, spec: GraphSpec, path: Path, *, per_channel: bool = True
) -> int:
    """Convert a prepared model to the int8 ONNX graph that matches its fake quantization.

    Args:
        model: The model after :func:`~qembed_worker.weights.fake_quant.fake_quantize_linears`
            (and training).
        spec: From :func:`qembed_worker.export.exporter.inspect_model`.
        path: The ``model.onnx`` to write.
        per_channel: Must equal the setting the layers were prepared with.

    Returns:
        The number of int8 linear layers.

    Raises:
        ModelError: The graph's linear layers are not the fake-quantized ones.
    """
    import onnx

    layers = fake_quant_layers(model)
    gelu_floor = any(layer.gelu_input for layer in layers)
    smoothing = {i: layer.alpha for i, layer in enumerate(layers) if layer.alpha is not None}
    with tempfile.TemporaryDirectory(prefix="qembed-int8-") as work:
        float_path = Path(work) / MODEL_FILE
        with float_linears(model):
            export_onnx(model, spec, float_path)
        float_graph = onnx.load(str(float_path))
    # Module order is forward order for these models, and the exporter keeps it.
    sites = linear_sites(float_graph)
    trained = [(layer.linear.in_features, layer.linear.out_features) for layer in layers]
    if trained != [site.shape for site in sites]:
        raise ModelError(
            f"the exported graph's {len(sites)} linear MatMuls are not the model's "
            f"{len(layers)} fake-quantized layers; the int8 graph would not match the training"
        )
    graph_gelu = [site.gelu_input and site.index not in smoothing for site in sites]
    if gelu_floor and [layer.gelu_input for layer in layers] != graph_gelu:
        raise ModelError("the GELU-fed layers of the graph are not the model's")
    graph, sites = rewrite_per_token(
        float_graph, per_channel=per_channel, gelu_floor=gelu_floor, smoothing=smoothing
    )
    path.write_bytes(graph.SerializeToString())  # type: ignore[attr-defined]
    return len(sites)


def int8_parity(
    model: SentenceTransformer, bundle_dir: Path, manifest: dict[str, Any], texts: list[str]
) -> dict[str, float]:
    """Minimum cosine between the fake-quantized PyTorch model and the int8 ONNX bundle.

    Each text runs alone on both sides, so both see the same shapes: with padding to different
    batch widths, float32 reductions sum in another order, and the int8 network amplifies such
    last-bit differences (a flipped activation rounding moves a value by a whole step).

    Returns:
        ``{"query": min cosine, "document": min cosine}``.
    """
    set_quant_noise(model, False)
    return parity(model, bundle_dir, manifest, texts, batch_size=1)


def write_int8_bundle(
    model: SentenceTransformer,
    folder: Path,
    out: Path,
    *,
    name: str,
    source: dict[str, Any],
    spec: GraphSpec,
    calibration: CalibrationOptions,
    per_channel: bool = True,
    training: dict[str, Any] | None = None,
    qat: str = "weight QAT (self-distillation)",
    source_fingerprint: str | None = None,
    parity_texts: list[str] | None = None,
    smoothing: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Write an int8 bundle from a prepared (fake-quantized) model.

    Args:
        model: The model after
            :func:`~qembed_worker.weights.fake_quant.fake_quantize_linears` and training.
        folder: A folder with the model's ``tokenizer.json`` (or the model's fast tokenizer is
            used).
        out: The bundle folder (existing bundle files are replaced).
        name: Manifest ``name``.
        source: Manifest ``source``.
        spec: From :func:`qembed_worker.export.exporter.inspect_model`.
        calibration: How the int8 graph's ranges are computed.
        per_channel: The weight granularity the layers were prepared with.
        training: Manifest ``training`` (the run summary).
        qat: Manifest ``weights.qat``.
        source_fingerprint: Manifest ``weights.source_fingerprint`` (e.g. the teacher's bundle).
        smoothing: Manifest ``weights.smoothing`` (how the layers' SmoothQuant factors were
            computed), if the model was prepared with them.
        parity_texts: Texts on which the int8 graph must agree with the fake-quantized model
            (cosine >= 0.999) before the bundle is written (default: a few built in).

    Returns:
        The manifest written and the parity (minimum cosine per input type).

    Raises:
        ModelError: The int8 graph disagrees with the fake-quantized model.
    """
    with publish(out, force=True) as staging:
        announce("converting: float weights -> ONNX -> per-token int8 MatMulInteger graph")
        export_int8_onnx(model, spec, staging.dir / MODEL_FILE, per_channel=per_channel)
        write_tokenizer(
            tokenizer_source(model, folder), staging.dir / TOKENIZER_FILE, spec.max_tokens
        )
        announce("calibrating ranges with the int8 graph (evaluated in float64)")
        ranges = calibrate(staging.dir, spec.partial_manifest(), calibration)
        layers = fake_quant_layers(model)
        weights = weights_manifest(
            method="per-token",
            per_channel=per_channel,
            layers=len(layers),
            gelu_floor=any(layer.gelu_input for layer in layers),
            smoothing=smoothing,
            source_fingerprint=source_fingerprint,
            qat=qat,
        )
        manifest = staging.write_manifest(
            spec.manifest(
                name=name, source=source, calibration=ranges, weights=weights, training=training
            )
        )
        announce("parity: the fake-quantized PyTorch model against the int8 ONNX graph")
        cosines = int8_parity(model, staging.dir, manifest, parity_texts or list(SMOKE_TEXTS))
        if min(cosines.values()) < MIN_PARITY_COSINE:
            raise ModelError(f"the int8 graph disagrees with the fake-quantized model: {cosines}")
    return manifest, cosines
