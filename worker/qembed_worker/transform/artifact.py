r"""The ``qembed.transform/v1`` folder: what the worker writes and the service reads.

``transform.json`` names little-endian float32 ``.npy`` files: ``mean`` (``[d]``) and, per code
length ``b``, ``W_b`` (``[b, d]``, row ``j`` gives bit ``j``). A document's code is
``bit j = W_b[j] . (x - mean) > 0``, packed like ``numpy.packbits`` (bit 0 is the most
significant bit of byte 0). The fingerprint is the first 16 hex digits of the SHA-256 of

    "qembed.transform/v1\n" + method + "\n" + dimension + "\n" + "128,64" + "\n"

(the lengths as listed in ``lengths``, longest first, comma-separated, UTF-8) followed by the
bytes of ``mean.npy`` and then of each length's file in that order: anything the codes depend on
changes it, and the same files give the same fingerprint on any machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker import __version__
from qembed_worker.transform import TransformError

FORMAT = "qembed.transform/v1"
TRANSFORM_FILE = "transform.json"
MEAN_FILE = "mean.npy"
FLOAT32_LE = np.dtype("<f4")


def weights_file(bits: int) -> str:
    """The file name of a length's projection, e.g. ``w128.npy``."""
    return f"w{bits}.npy"


@dataclass(frozen=True)
class TransformArtifact:
    """A transform read from its folder.

    Attributes:
        manifest: ``transform.json`` as read.
        mean: ``(d,)`` float32 centre.
        weights: ``(b, d)`` float32 projection per code length.
    """

    manifest: dict[str, Any]
    mean: np.ndarray
    weights: dict[int, np.ndarray]


def fingerprint(folder: Path, method: str, dimension: int, lengths: list[int]) -> str:
    """The transform fingerprint over ``folder``'s files (see the module docstring)."""
    digest = hashlib.sha256()
    header = f"{FORMAT}\n{method}\n{dimension}\n{','.join(map(str, lengths))}\n"
    digest.update(header.encode("utf-8"))
    for name in [MEAN_FILE, *(weights_file(b) for b in lengths)]:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array, dtype=FLOAT32_LE), allow_pickle=False)


def write_transform(
    out: Path,
    *,
    method: str,
    model: str | None,
    mean: np.ndarray,
    weights: dict[int, np.ndarray],
    sample: dict[str, Any],
    training: dict[str, Any],
    evaluation: dict[str, Any],
    force: bool = False,
) -> dict[str, Any]:
    """Write a transform folder: staged next to ``out``, then moved into place.

    Args:
        out: Destination folder (created; must be empty unless ``force``).
        method: ``itq`` or ``qat``.
        model: The bundle fingerprint the codes came from, or ``None``.
        mean: ``(d,)`` centre.
        weights: ``(b, d)`` projection per code length.
        sample: Which documents were fitted (``documents``, ``holdout``, ``seed``, ``sha256``).
        training: The training summary.
        evaluation: The evaluation (``queries``, ``k``, ``rows``).
        force: Replace the files of a non-empty ``out``.

    Returns:
        ``transform.json`` as written.

    Raises:
        TransformError: ``out`` holds files and ``force`` is not set.
    """
    if out.exists() and any(out.iterdir()) and not force:
        raise TransformError(f"{out} is not empty; pass --force to overwrite it")
    dimension = int(np.asarray(mean).shape[0])
    lengths = sorted(weights, reverse=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        _save(staging / MEAN_FILE, mean)
        for bits in lengths:
            _save(staging / weights_file(bits), weights[bits])
        manifest = {
            "format": FORMAT,
            "fingerprint": fingerprint(staging, method, dimension, lengths),
            "method": method,
            "model": model,
            "dimension": dimension,
            "mean": MEAN_FILE,
            "lengths": {str(bits): weights_file(bits) for bits in lengths},
            "created_by": f"qembed-worker {__version__}",
            "sample": sample,
            "training": training,
            "evaluation": evaluation,
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        (staging / TRANSFORM_FILE).write_text(text, "utf-8")
        # mkdtemp makes the folder private (0700); a transform is read by the service.
        staging.chmod(0o755)
        # A reader sees the old folder or the whole new one, never a half-written one.
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_transform(folder: Path) -> TransformArtifact:
    """Read and check a transform folder.

    Raises:
        TransformError: A file is missing, a shape or dtype breaks the contract, or the
            fingerprint does not match the files.
    """
    path = folder / TRANSFORM_FILE
    if not path.is_file():
        raise TransformError(f"{folder} is not a transform: {TRANSFORM_FILE} is missing")
    manifest = json.loads(path.read_text("utf-8"))
    if manifest.get("format") != FORMAT:
        raise TransformError(f"{path}: format is {manifest.get('format')!r}, not {FORMAT!r}")
    dimension = int(manifest["dimension"])

    def load(name: str, shape: tuple[int, ...]) -> np.ndarray:
        array = np.load(folder / name, allow_pickle=False)
        if array.dtype != FLOAT32_LE or array.shape != shape:
            raise TransformError(
                f"{folder / name}: {array.dtype} {array.shape}, expected float32 {shape}"
            )
        return array

    mean = load(manifest["mean"], (dimension,))
    weights = {int(b): load(name, (int(b), dimension)) for b, name in manifest["lengths"].items()}
    lengths = [int(b) for b in manifest["lengths"]]
    expected = fingerprint(folder, manifest["method"], dimension, lengths)
    if manifest["fingerprint"] != expected:
        raise TransformError(
            f"{path}: fingerprint {manifest['fingerprint']} does not match the files ({expected})"
        )
    return TransformArtifact(manifest=manifest, mean=mean, weights=weights)
