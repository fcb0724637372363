"""The bundle baked from a saved head in seconds (``bake-head``).

Training a head is quick but not bit-reproducible across CPUs (PyTorch's float32 sums follow the
instruction set), so a head that a default bundle depends on is trained once, saved with
``train --save-head FILE`` (:func:`qembed_worker.qat.head.save_head`) and committed. Baking
appends it to the source bundle's graph and calibrates the result in float64, which gives the
same fingerprint on every machine, and the bundle ``train`` wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qembed_worker.bundle.manifest import MODEL_FILE, BundleError, read_manifest
from qembed_worker.bundle.publish import prepare_out_dir
from qembed_worker.qat.head import bake_head, load_head
from qembed_worker.qat.publishing import publish_trained_bundle


def bake_head_bundle(
    *, bundle: Path, head: Path, out: Path, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Append a saved head to its source bundle's graph and publish the calibrated result.

    Args:
        bundle: The source bundle the head was trained on (its fingerprint is checked).
        head: The head file (``train --save-head``).
        out: The new bundle folder.
        force: Replace the bundle files of a non-empty ``out``.
        progress: Progress bars while calibrating.

    Returns:
        A summary: fingerprints and the code lengths.

    Raises:
        BundleError: The head was trained on another bundle, or does not fit its dimension.
    """
    artifact = load_head(head)
    manifest = read_manifest(bundle)
    if manifest["fingerprint"] != artifact.source_fingerprint:
        raise BundleError(
            f"{head} was trained on bundle {artifact.source_fingerprint}, not on {bundle} "
            f"({manifest['fingerprint']})"
        )
    if artifact.weight.shape[0] != int(manifest["dimension"]):
        raise BundleError(f"{head} is {artifact.weight.shape[0]}-dimensional, {bundle} is not")
    prepare_out_dir(out, force=force)

    def write_graph(folder: Path) -> None:
        bake_head(
            bundle / MODEL_FILE,
            folder / MODEL_FILE,
            artifact.weight,
            artifact.bias,
            normalize=artifact.normalize,
        )

    written = publish_trained_bundle(
        out,
        bundle,
        manifest,
        artifact.calibration,
        write_graph,
        name=artifact.name,
        training=artifact.training,
        code_lengths=artifact.code_lengths,
        progress=progress,
    )
    return {
        "bundle": str(out),
        "from": manifest["fingerprint"],
        "fingerprint": written["fingerprint"],
        "binary_code_bits": written.get("binary_code_bits"),
    }
