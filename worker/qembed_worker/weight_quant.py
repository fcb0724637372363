"""Post-training int8 weights for a bundle: ``python -m qembed_worker quantize-weights``.

The float32 bundle's ``model.onnx`` gets int8 linear layers (:mod:`qembed_worker.onnx_int8`),
then fresh calibration ranges are computed with the *quantized* graph (its embeddings differ
slightly from the float32 ones) and the manifest records the weight precision and the float32
bundle it came from. The tokenizer and prompts are copied unchanged.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qembed_worker.bundle import (
    BUNDLE_FILES,
    MODEL_FILE,
    TOKENIZER_FILE,
    BundleError,
    Calibration,
    check_bundle,
    created_at_now,
    created_by,
    write_bundle_manifest,
)
from qembed_worker.onnx_int8 import METHODS, LinearSite, quantize_dynamic_ort, rewrite_per_token

ACTIVATIONS = {
    "per-token": "int8 per token, symmetric, dynamic (max|x| / 127)",
    "per-token+gelu-floor": "int8 per token, symmetric, dynamic (max|x| / 127); GELU outputs "
    "as uint8 per token with zero point 16 (max(x) / 239)",
    "dynamic": "uint8 per tensor (whole batch), asymmetric, dynamic (DynamicQuantizeLinear)",
}


def weights_manifest(
    *,
    method: str,
    per_channel: bool,
    layers: int,
    excluded: Iterable[str] = (),
    gelu_floor: bool = False,
    source_fingerprint: str | None = None,
    qat: str | None = None,
) -> dict[str, Any]:
    """The manifest's ``weights`` object for an int8 bundle.

    Args:
        method: ``per-token`` or ``dynamic`` (see :mod:`qembed_worker.onnx_int8`).
        per_channel: Per output channel weight scales.
        layers: How many linear layers are int8.
        excluded: Roles left in float32.
        gelu_floor: GELU outputs are quantized with the fixed zero point (``per-token``).
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
        "float_layers": sorted(set(excluded)),
        "qat": qat,
        "source_fingerprint": source_fingerprint,
    }


def quantize_model_file(
    source: Path,
    target: Path,
    *,
    method: str = "per-token",
    per_channel: bool = True,
    exclude: Iterable[str] = (),
    gelu_floor: bool = True,
) -> list[LinearSite]:
    """Write an int8-weight copy of a float32 ``model.onnx``.

    Args:
        source: The float32 graph.
        target: Where to write the int8 graph.
        method: ``per-token`` (the QAT numerics) or ``dynamic`` (onnxruntime's).
        per_channel: Per output channel weight scales.
        exclude: Roles (``attention``, ``ffn_in``, ``ffn_out``) to leave in float32.
        gelu_floor: ``per-token``: quantize GELU outputs as uint8 with zero point 16.

    Returns:
        The linear layers that were quantized.

    Raises:
        ValueError: Unknown method or role.
    """
    import onnx

    exclude = list(exclude)
    if method == "per-token":
        model, sites = rewrite_per_token(
            onnx.load(str(source)), per_channel=per_channel, exclude=exclude, gelu_floor=gelu_floor
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
    force: bool = False,
    calibrate_fn: Any = None,
) -> dict[str, Any]:
    """Write an int8-weight copy of a float32 bundle with fresh calibration ranges.

    Args:
        bundle: The float32 bundle.
        out: The bundle folder to write (not ``bundle`` itself).
        method: ``per-token`` or ``dynamic``.
        per_channel: Per output channel weight scales.
        exclude: Roles to leave in float32.
        gelu_floor: ``per-token``: quantize GELU outputs as uint8 with zero point 16.
        force: Overwrite a non-empty ``out``.
        calibrate_fn: ``(staging_dir, manifest) -> Calibration``; default: the Lee corpus,
            ``minmax`` (as ``calibrate`` does).

    Returns:
        A summary: fingerprints, layers, sizes.

    Raises:
        BundleError: The source is not a float32 bundle or ``out`` is not writable.
    """
    from qembed_worker.calibration import calibrate, prepare_out_dir

    manifest = check_bundle(bundle, probe=False)
    precision = (manifest.get("weights") or {}).get("precision")
    if precision != "float32":
        raise BundleError(f"{bundle} has {precision} weights; quantize a float32 bundle")
    if out.resolve() == bundle.resolve():
        raise BundleError("--out must differ from --bundle (the float32 bundle stays as it is)")
    prepare_out_dir(out, force=force)
    exclude = sorted(set(exclude))
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as staging_name:
        staging = Path(staging_name)
        sites = quantize_model_file(
            bundle / MODEL_FILE,
            staging / MODEL_FILE,
            method=method,
            per_channel=per_channel,
            exclude=exclude,
            gelu_floor=gelu_floor,
        )
        shutil.copyfile(bundle / TOKENIZER_FILE, staging / TOKENIZER_FILE)
        calibration: Calibration = (calibrate_fn or calibrate)(staging, manifest)
        new = dict(manifest)
        new["created_at"] = created_at_now()
        new["created_by"] = created_by()
        new["weights"] = weights_manifest(
            method=method,
            per_channel=per_channel,
            layers=len(sites),
            excluded=exclude,
            gelu_floor=gelu_floor and any(site.gelu_input for site in sites),
            source_fingerprint=manifest["fingerprint"],
        )
        new["calibration"] = calibration.to_json()
        new["evaluation"] = None
        new = write_bundle_manifest(staging, new)
        for file in BUNDLE_FILES:
            shutil.move(staging / file, out / file)
    check_bundle(out)
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
