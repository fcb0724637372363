"""The model bundle: manifest layout, fingerprint and checks (see docs/model-bundle.md).

This module is the worker's one reader and writer of ``manifest.json``: every manifest read
(:func:`read_manifest`) or written (:func:`write_bundle_manifest`) is validated against
``contracts/manifest.schema.json``, the schema the service validates against too; the checks
JSON Schema cannot express (lengths tied to ``dimension``, max > min, the fingerprint, the ONNX
graph) are :func:`check_bundle`'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker import __version__
from qembed_worker.bundle.jsonio import f32_list, read_json, write_json
from qembed_worker.contracts import MANIFEST, ContractError, validate

FORMAT = "qembed.bundle/v1"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
BUNDLE_FILES = (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE)
OUTPUT_NAME = "sentence_embedding"
INPUT_TYPES = ("query", "document")
POOLING_MODES = ("mean", "cls", "lasttoken")


class BundleError(Exception):
    """A bundle folder or manifest does not follow docs/model-bundle.md."""


@dataclass(frozen=True)
class CorpusInfo:
    """Where calibration embeddings came from.

    Attributes:
        name: Human name of the corpus (``lee`` or a file name).
        sha256: SHA-256 hex of the corpus file as read.
        texts: How many texts were embedded.
        input_type: The prompt used to embed them (``document`` or ``query``).
    """

    name: str
    sha256: str
    texts: int
    input_type: str


@dataclass(frozen=True)
class Calibration:
    """Per-dimension quantization ranges and how they were computed.

    Attributes:
        method: ``minmax`` or ``quantile``.
        quantile: The clipped tail for ``quantile`` (e.g. 0.001), ``None`` for ``minmax``.
        corpus: The calibration corpus.
        min: float32 array of shape ``(dimension,)``.
        max: float32 array of shape ``(dimension,)``, each strictly greater than ``min``.
    """

    method: str
    quantile: float | None
    corpus: CorpusInfo
    min: np.ndarray
    max: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """Return the manifest's ``calibration`` object."""
        return {
            "method": self.method,
            "quantile": self.quantile,
            "corpus": {
                "name": self.corpus.name,
                "sha256": self.corpus.sha256,
                "texts": self.corpus.texts,
                "input_type": self.corpus.input_type,
            },
            "min": f32_list(self.min),
            "max": f32_list(self.max),
        }


def sha256_file(path: Path) -> str:
    """Return the lowercase SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def calibration_sha256(min_values: Any, max_values: Any) -> str:
    """Hash the ranges as the fingerprint does: float32 little-endian ``min`` then ``max``.

    Args:
        min_values: The per-dimension minimums (rounded to float32).
        max_values: The per-dimension maximums (rounded to float32).

    Returns:
        The lowercase SHA-256 hex digest.
    """
    lo = np.asarray(min_values, dtype="<f4")
    hi = np.asarray(max_values, dtype="<f4")
    return hashlib.sha256(lo.tobytes() + hi.tobytes()).hexdigest()


def json_string(value: str) -> str:
    """JSON-encode a string exactly as JavaScript's ``JSON.stringify`` does.

    ``ensure_ascii=False`` keeps non-ASCII characters literal (UTF-8 in the hashed text), which
    is what ``JSON.stringify`` does; both escape control characters the same way.
    """
    return json.dumps(value, ensure_ascii=False)


def compute_fingerprint(
    *,
    model_sha256: str,
    tokenizer_sha256: str,
    calibration_sha: str,
    dimension: int,
    max_tokens: int,
    query_prompt: str,
    document_prompt: str,
) -> str:
    """Compute a bundle fingerprint from its parts (docs/model-bundle.md, "Fingerprint").

    Returns:
        The first 16 hex digits of the SHA-256 of the UTF-8 fingerprint text.
    """
    text = "\n".join(
        [
            FORMAT,
            model_sha256,
            tokenizer_sha256,
            calibration_sha,
            str(dimension),
            str(max_tokens),
            json_string(query_prompt),
            json_string(document_prompt),
        ]
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint_of(bundle_dir: Path, manifest: dict[str, Any]) -> str:
    """Compute the fingerprint of the files in ``bundle_dir`` under ``manifest``'s fields.

    Args:
        bundle_dir: Folder holding ``model.onnx`` and ``tokenizer.json``.
        manifest: The manifest (its own ``fingerprint`` field is ignored).

    Returns:
        The 16-hex-digit fingerprint.
    """
    calibration = manifest["calibration"]
    return compute_fingerprint(
        model_sha256=sha256_file(bundle_dir / MODEL_FILE),
        tokenizer_sha256=sha256_file(bundle_dir / TOKENIZER_FILE),
        calibration_sha=calibration_sha256(calibration["min"], calibration["max"]),
        dimension=int(manifest["dimension"]),
        max_tokens=int(manifest["max_tokens"]),
        query_prompt=manifest["prompts"]["query"],
        document_prompt=manifest["prompts"]["document"],
    )


def created_at_now() -> str:
    """Return the creation time as ``YYYY-MM-DDTHH:MM:SSZ``.

    Honors ``SOURCE_DATE_EPOCH`` (reproducible-builds convention) so that regenerated fixtures
    can be byte-identical.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
        if epoch
        else dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def created_by() -> str:
    """Return the ``created_by`` text naming the worker and its main libraries."""
    import sentence_transformers
    import torch

    torch_version = torch.__version__.split("+")[0]
    return (
        f"qembed-worker {__version__} (torch {torch_version}, "
        f"sentence-transformers {sentence_transformers.__version__})"
    )


def build_manifest(
    *,
    name: str,
    source: dict[str, Any],
    dimension: int,
    max_tokens: int,
    pooling: str,
    normalize: bool,
    prompts: dict[str, str],
    onnx_inputs: list[str],
    calibration: Calibration,
    weights: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a manifest in the documented field order, with an empty fingerprint.

    The fingerprint is filled in by :func:`write_bundle_manifest`, once the files exist.

    Returns:
        The manifest as a dict.
    """
    return {
        "format": FORMAT,
        "name": name,
        "fingerprint": "",
        "source": source,
        "created_at": created_at_now(),
        "created_by": created_by(),
        "dimension": dimension,
        "max_tokens": max_tokens,
        "pooling": pooling,
        "normalize": normalize,
        "prompts": {"query": prompts.get("query", ""), "document": prompts.get("document", "")},
        "weights": weights if weights is not None else {"precision": "float32"},
        "onnx": {"inputs": list(onnx_inputs), "output": OUTPUT_NAME},
        "calibration": calibration.to_json(),
        "training": training,
        "evaluation": evaluation,
        **code_lengths(dimension),
    }


# Compact first-stage code lengths a bundle offers besides its full length (docs/qat.md).
COMPACT_CODE_BITS = (256, 128, 64)


def code_lengths(dimension: int) -> dict[str, Any]:
    """The ``binary_code_bits`` field of a new bundle: its full length, then the compact ones.

    A compact code is the signs of the first ``N`` dimensions. Every model can give them; how
    much ranking they keep depends on the model (measured per length in docs/qat.md, where a
    head trained or fitted for them helps). Nothing when no compact length fits the dimension.
    """
    compact = [bits for bits in COMPACT_CODE_BITS if bits < dimension]
    return {"binary_code_bits": [dimension, *compact]} if compact else {}


def write_bundle_manifest(bundle_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Fingerprint the bundle files, then write ``manifest.json``.

    Args:
        bundle_dir: Folder that already holds ``model.onnx`` and ``tokenizer.json``.
        manifest: The manifest to write; its ``fingerprint`` is replaced.

    Returns:
        The manifest as written.
    """
    manifest = dict(manifest)
    manifest["fingerprint"] = fingerprint_of(bundle_dir, manifest)
    check_contract(manifest, f"the manifest written for {bundle_dir}")
    write_json(bundle_dir / MANIFEST_FILE, manifest)
    return manifest


def check_contract(manifest: Any, what: str) -> None:
    """Validate a manifest against ``contracts/manifest.schema.json``.

    Raises:
        BundleError: ``<what> does not follow contracts/manifest.schema.json at <field>: ...``.
    """
    try:
        validate(MANIFEST, manifest)
    except ContractError as error:
        raise BundleError(f"{what} {error}") from error


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """Read a bundle's manifest, validated against ``contracts/manifest.schema.json``.

    Raises:
        BundleError: The folder has no readable ``manifest.json``, or it breaks the contract.
    """
    path = bundle_dir / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(f"{bundle_dir} is not a bundle: {MANIFEST_FILE} is missing")
    try:
        manifest = read_json(path)
    except json.JSONDecodeError as error:
        raise BundleError(f"{path} is not valid JSON: {error}") from error
    check_contract(manifest, str(path))
    return manifest


def check_bundle(bundle_dir: Path, *, probe: bool = True) -> dict[str, Any]:
    """Check a bundle the way the service does at start, raising on the first problem.

    Args:
        bundle_dir: The bundle folder.
        probe: Also run one inference through onnxruntime and check its shape.

    Returns:
        The manifest.

    Raises:
        BundleError: Naming the problem.
    """
    for file in BUNDLE_FILES:
        if not (bundle_dir / file).is_file():
            raise BundleError(f"{bundle_dir}: {file} is missing")
    manifest = read_manifest(bundle_dir)  # the format, fields and types: the contract
    dimension = manifest["dimension"]
    lo = np.asarray(manifest["calibration"]["min"], dtype=np.float32)
    hi = np.asarray(manifest["calibration"]["max"], dtype=np.float32)
    if lo.shape != (dimension,) or hi.shape != (dimension,):
        raise BundleError(f"calibration has {lo.size} / {hi.size} values, expected {dimension}")
    if not np.all(hi > lo):
        bad = int(np.argmin(hi > lo))
        raise BundleError(f"calibration max <= min at dimension {bad}")
    fingerprint = fingerprint_of(bundle_dir, manifest)
    if fingerprint != manifest["fingerprint"]:
        raise BundleError(
            f"fingerprint {manifest['fingerprint']} does not match the files ({fingerprint})"
        )
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle_dir / MODEL_FILE), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    if inputs != manifest["onnx"]["inputs"]:
        raise BundleError(
            f"ONNX inputs {inputs} are not the manifest's {manifest['onnx']['inputs']}"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    output = outputs.get(manifest["onnx"]["output"])
    if output is None:
        raise BundleError(f"ONNX output {manifest['onnx']['output']!r} is missing")
    if output.shape[-1] != dimension:
        raise BundleError(f"ONNX output last axis is {output.shape[-1]}, expected {dimension}")
    if probe:
        feed = {name: np.array([[101, 102]], dtype=np.int64) for name in inputs}
        if "attention_mask" in feed:
            feed["attention_mask"] = np.ones((1, 2), dtype=np.int64)
        if "token_type_ids" in feed:
            feed["token_type_ids"] = np.zeros((1, 2), dtype=np.int64)
        (result,) = session.run([output.name], feed)
        if result.shape != (1, dimension):
            raise BundleError(f"probe inference returned {result.shape}, expected (1, {dimension})")
    return manifest
