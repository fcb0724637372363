"""Post-training int8 weights for a bundle: ``python -m qembed_worker quantize-weights``.

The float32 bundle's ``model.onnx`` gets int8 linear layers
(:mod:`qembed_worker.weights.int8_graph`), then fresh calibration ranges are computed with the
*quantized* graph (its embeddings differ slightly from the float32 ones) and the manifest records
the weight precision and the float32 bundle it came from. The tokenizer and prompts are copied
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.manifest import MODEL_FILE, TOKENIZER_FILE, BundleError, check_bundle
from qembed_worker.bundle.publish import prepare_out_dir, publish
from qembed_worker.calibration.ranges import CalibrationOptions, calibrate
from qembed_worker.data.corpus import load_corpus
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.inference.float64_graph import channel_maxima
from qembed_worker.weights.int8_graph import (
    METHODS,
    SMOOTH_BETA,
    SMOOTH_ROLES,
    LinearSite,
    linear_sites,
    quantize_dynamic_ort,
    rewrite_per_token,
    smoothing_factors,
)

SMOOTH_TEXTS = 256

ACTIVATIONS = {
    "per-token": "7-bit per token, symmetric, dynamic (max|x| / 63), as uint8 with zero point 64",
    "per-token+gelu-floor": "7-bit per token, symmetric, dynamic (max|x| / 63), as uint8 with "
    "zero point 64; GELU outputs as uint8 per token in [0, 127] with zero point 8 (max(x) / 119)",
    "dynamic": "uint8 per tensor (whole batch), asymmetric, dynamic (DynamicQuantizeLinear)",
}


def weights_manifest(
    *,
    method: str,
    per_channel: bool,
    layers: int,
    excluded: Iterable[str] = (),
    gelu_floor: bool = False,
    smoothing: dict[str, Any] | None = None,
    source_fingerprint: str | None = None,
    qat: str | None = None,
) -> dict[str, Any]:
    """The manifest's ``weights`` object for an int8 bundle.

    Args:
        method: ``per-token`` or ``dynamic`` (see :mod:`qembed_worker.weights.int8_graph`).
        per_channel: Per output channel weight scales.
        layers: How many linear layers are int8.
        excluded: Roles left in float32.
        gelu_floor: GELU outputs are quantized with the fixed zero point (``per-token``).
        smoothing: How SmoothQuant factors were computed (``None``: not smoothed).
        source_fingerprint: The float32 bundle the weights came from (PTQ), if any.
        qat: How the weights were trained for int8 (``None`` for post-training quantization).

    Returns:
        ``{"precision": "int8", "method": ..., ...}``.
    """
    return {
        "precision": "int8",
        "method": method,
        "per_channel": per_channel,
        "activations": ACTIVATIONS[
            "per-token+gelu-floor" if method == "per-token" and gelu_floor else method
        ],
        "linear_layers": layers,
        "smoothing": smoothing,
        "float_layers": sorted(set(excluded)),
        "qat": qat,
        "source_fingerprint": source_fingerprint,
    }


def bundle_smoothing(
    bundle: Path,
    manifest: dict[str, Any],
    *,
    corpus: str = "lee",
    limit: int = SMOOTH_TEXTS,
    beta: float = SMOOTH_BETA,
    roles: Iterable[str] = SMOOTH_ROLES,
    batch_size: int = 32,
    cache_dir: Path | None = None,
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """SmoothQuant factors of a float32 bundle's linear layers, from its own activations.

    Evaluates ``model.onnx`` in float64 (:mod:`qembed_worker.inference.float64_graph`, the same
    numbers on every machine) on the first ``limit`` corpus texts (document prompt) and feeds the
    per-channel activation maxima to :func:`qembed_worker.weights.int8_graph.smoothing_factors`.

    Returns:
        ``({site index: alpha}, description for the manifest)``.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(bundle / MODEL_FILE))
    sites = linear_sites(model)
    roles = tuple(roles)
    chosen = [site for site in sites if site.role in roles and not site.gelu_input]
    texts = load_corpus(corpus, limit=limit, cache_dir=cache_dir)
    encoder = OnnxEncoder(bundle, manifest["prompts"], manifest["onnx"]["inputs"], float64=True)
    ids = sorted(encoder.tokenize(texts.texts, "document"), key=len)
    feeds = [encoder.feed(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
    maxima = channel_maxima(encoder.session, feeds, [site.input for site in chosen])
    initializers = {init.name: init for init in model.graph.initializer}
    weights = {site.weight: numpy_helper.to_array(initializers[site.weight]) for site in chosen}
    factors = smoothing_factors(sites, weights, maxima, beta=beta, roles=roles)
    info = {
        "method": "smoothquant",
        "beta": beta,
        "roles": list(roles),
        "layers": len(factors),
        "corpus": {"name": texts.name, "sha256": texts.sha256, "texts": len(texts.texts)},
    }
    return factors, info


def quantize_model_file(
    source: Path,
    target: Path,
    *,
    method: str = "per-token",
    per_channel: bool = True,
    exclude: Iterable[str] = (),
    gelu_floor: bool = True,
    smoothing: dict[int, np.ndarray] | None = None,
) -> list[LinearSite]:
    """Write an int8-weight copy of a float32 ``model.onnx``.

    Args:
        source: The float32 graph.
        target: Where to write the int8 graph.
        method: ``per-token`` (the QAT numerics) or ``dynamic`` (onnxruntime's).
        per_channel: Per output channel weight scales.
        exclude: Roles (``attention``, ``ffn_in``, ``ffn_out``) to leave in float32.
        gelu_floor: ``per-token``: quantize GELU outputs as uint8 codes in [0, 127], zero point 8.
        smoothing: ``per-token``: SmoothQuant factors (:func:`bundle_smoothing`).

    Returns:
        The linear layers that were quantized.

    Raises:
        ValueError: Unknown method or role.
    """
    import onnx

    exclude = list(exclude)
    if method == "per-token":
        model, sites = rewrite_per_token(
            onnx.load(str(source)),
            per_channel=per_channel,
            exclude=exclude,
            gelu_floor=gelu_floor,
            smoothing=smoothing,
        )
        target.write_bytes(model.SerializeToString())  # type: ignore[attr-defined]
        return sites
    if method == "dynamic":
        return quantize_dynamic_ort(source, target, per_channel=per_channel, exclude=exclude)
    raise ValueError(f"unknown method {method!r}; use one of {METHODS}")


def quantize_weights_bundle(
    *,
    bundle: Path,
    out: Path,
    method: str = "per-token",
    per_channel: bool = True,
    exclude: Iterable[str] = (),
    gelu_floor: bool = True,
    smooth: bool = True,
    smooth_options: dict[str, Any] | None = None,
    force: bool = False,
    calibration: CalibrationOptions | None = None,
) -> dict[str, Any]:
    """Write an int8-weight copy of a float32 bundle with fresh calibration ranges.

    Args:
        bundle: The float32 bundle.
        out: The bundle folder to write (not ``bundle`` itself).
        method: ``per-token`` or ``dynamic``.
        per_channel: Per output channel weight scales.
        exclude: Roles to leave in float32.
        gelu_floor: ``per-token``: quantize GELU outputs as uint8 codes in [0, 127], zero point 8.
        smooth: ``per-token``: SmoothQuant the attention and widening FFN layers
            (:func:`bundle_smoothing`).
        smooth_options: Keyword arguments for :func:`bundle_smoothing` (corpus, limit, beta).
        force: Overwrite a non-empty ``out``.
        calibration: How the int8 graph's ranges are computed (default: the Lee corpus,
            ``minmax``).

    Returns:
        A summary: fingerprints, layers, sizes.

    Raises:
        BundleError: The source is not a float32 bundle or ``out`` is not writable.
    """
    manifest = check_bundle(bundle, probe=False)
    precision = (manifest.get("weights") or {}).get("precision")
    if precision != "float32":
        raise BundleError(f"{bundle} has {precision} weights; quantize a float32 bundle")
    if out.resolve() == bundle.resolve():
        raise BundleError("--out must differ from --bundle (the float32 bundle stays as it is)")
    prepare_out_dir(out, force=force)  # fail before the slow part
    exclude = sorted(set(exclude))
    factors, smoothing = None, None
    if smooth and method == "per-token":
        factors, smoothing = bundle_smoothing(bundle, manifest, **(smooth_options or {}))
    with publish(out, force=force) as staging:
        sites = quantize_model_file(
            bundle / MODEL_FILE,
            staging.dir / MODEL_FILE,
            method=method,
            per_channel=per_channel,
            exclude=exclude,
            gelu_floor=gelu_floor,
            smoothing=factors,
        )
        staging.copy_from(bundle, TOKENIZER_FILE)
        ranges = calibrate(staging.dir, manifest, calibration or CalibrationOptions())
        weights = weights_manifest(
            method=method,
            per_channel=per_channel,
            layers=len(sites),
            excluded=exclude,
            gelu_floor=gelu_floor and any(site.gelu_input for site in sites),
            smoothing=smoothing,
            source_fingerprint=manifest["fingerprint"],
        )
        new = staging.write_manifest(
            {**manifest, "weights": weights, "calibration": ranges.to_json(), "evaluation": None}
        )
    return {
        "bundle": str(out),
        "from": manifest["fingerprint"],
        "fingerprint": new["fingerprint"],
        "weights": new["weights"],
        "model_onnx_bytes": {
            "float32": (bundle / MODEL_FILE).stat().st_size,
            "int8": (out / MODEL_FILE).stat().st_size,
        },
    }
