"""The trained head and how it is baked into a bundle's ONNX graph.

The head maps the encoder's sentence embedding ``x`` (already L2-normalized by the bundle's
graph) to ``normalize(W x + b)``: ``W`` is a dxd matrix initialised to the identity, either
kept orthogonal (a rotation, which leaves float32 cosines unchanged when there is no bias) or
free; ``b`` is an optional bias. Appending ``MatMul → Add → x / max(‖x‖, eps)`` after the
graph's ``sentence_embedding`` gives a bundle that the service loads with no code change.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional

from qembed_worker.bundle.manifest import OUTPUT_NAME, BundleError
from qembed_worker.calibration.ranges import CalibrationOptions

HEAD_KINDS = ("rotation", "linear")
# torch.nn.functional.normalize's default: x / max(‖x‖₂, eps).
NORMALIZE_EPS = 1e-12
BASE_OUTPUT = "sentence_embedding_encoder"


class Head(torch.nn.Module):
    """A dxd head, identity at initialisation.

    Args:
        dimension: The embedding dimension ``d``.
        kind: ``rotation`` (orthogonal, via ``torch.nn.utils.parametrizations.orthogonal``)
            or ``linear`` (free matrix).
        bias: Learn a bias added after the matrix.
        normalize: L2-normalize the output (the service expects unit vectors for cosine).
    """

    def __init__(
        self, dimension: int, kind: str = "rotation", bias: bool = False, normalize: bool = True
    ) -> None:
        """Build the identity head."""
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}; use one of {HEAD_KINDS}")
        self.kind = kind
        self.normalize = normalize
        self.linear = torch.nn.Linear(dimension, dimension, bias=bias)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dimension))
            if bias:
                self.linear.bias.zero_()
        if kind == "rotation":
            # The identity is orthogonal, so the parametrization starts exactly there. The
            # Cayley map is the cheapest of torch's maps for a d x d matrix on a CPU.
            torch.nn.utils.parametrizations.orthogonal(
                self.linear, "weight", orthogonal_map="cayley"
            )

    def set_base(self, base: np.ndarray) -> None:
        """Start from ``base`` (an orthogonal d x d matrix): the head computes ``W · base · x``.

        The trained matrix ``W`` still starts at identity, so the head starts at ``base``; a
        rotation head stays orthogonal (a product of orthogonal matrices).
        """
        matrix = torch.from_numpy(np.asarray(base, dtype=np.float32))
        self.register_buffer("base", matrix, persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the head to ``(n, d)`` embeddings (returns a new tensor)."""
        base = getattr(self, "base", None)
        y = self.linear(x if base is None else x @ base.T)
        return functional.normalize(y, p=2, dim=-1, eps=NORMALIZE_EPS) if self.normalize else y

    def set_bias(self, bias: np.ndarray) -> None:
        """Set the bias (e.g. to centre the training embeddings)."""
        if self.linear.bias is None:
            raise ValueError("the head has no bias")
        with torch.no_grad():
            self.linear.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))

    def matrices(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``W`` (out x in, float32) and ``b`` (or ``None``) as numpy arrays."""
        with torch.no_grad():
            weight = self.linear.weight.detach().float().cpu().numpy().copy()
            base = getattr(self, "base", None)
            if base is not None:
                weight = (weight.astype(np.float64) @ base.double().cpu().numpy()).astype(
                    np.float32
                )
            bias = self.linear.bias
            return weight, None if bias is None else bias.detach().float().cpu().numpy().copy()


def principal_axes(embeddings: np.ndarray) -> np.ndarray:
    """The rotation onto the principal axes of ``embeddings``, largest variance first.

    Rows of the returned ``d x d`` orthogonal matrix are the eigenvectors of the centred
    covariance (float64), each signed so that its largest component is positive (eigenvectors
    have no sign of their own; this makes the result a function of the data alone). As a head's
    starting point it puts the most varied directions first, where a compact code reads them.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(x.T @ x / max(len(x) - 1, 1))
    axes = vectors[:, np.argsort(-values, kind="stable")].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return axes * np.where(signs == 0, 1.0, signs)[:, None]


def apply_head_numpy(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, normalize: bool = True
) -> np.ndarray:
    """The head in numpy float32 (for evaluation without a model in memory)."""
    y = np.asarray(x, dtype=np.float32) @ np.asarray(weight, dtype=np.float32).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float32)
    if normalize:
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), NORMALIZE_EPS)
    return y.astype(np.float32)


def read_heads(model_path: Path) -> list[tuple[np.ndarray, np.ndarray | None, bool]]:
    """The heads baked into a graph by :func:`bake_head`, in the order they apply.

    Returns:
        ``[(W, b or None, normalize)]``, empty for a graph without a head.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    produced = {out for node in graph.node for out in node.output}
    heads = []
    index = 0
    while f"{BASE_OUTPUT}{index or ''}" in produced:
        prefix = f"head{index or ''}."
        heads.append(
            (
                weights[f"{prefix}weight_t"].T.copy(),
                weights.get(f"{prefix}bias"),
                f"{prefix}denominator" in produced,
            )
        )
        index += 1
    # Head 0 reads the encoder's output, head 1 reads head 0's, and so on.
    return heads


def bake_head(
    source: Path,
    target: Path,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    normalize: bool = True,
) -> None:
    """Append the head to an ONNX graph after its ``sentence_embedding`` output.

    The original output is renamed ``sentence_embedding_encoder`` and feeds
    ``MatMul(Wᵀ) → Add(b) → Div by Max(Sqrt(ReduceSum(x²)), eps)``, whose result is the new
    ``sentence_embedding`` with the same type and shape.

    Args:
        source: The bundle's ``model.onnx``.
        target: Where to write the new graph (may not be ``source``).
        weight: ``W``, shape ``(d, d)`` as ``torch.nn.Linear`` stores it (out x in).
        bias: ``b`` of shape ``(d,)`` or ``None``.
        normalize: Append the L2 normalization.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    if not any(output.name == OUTPUT_NAME for output in graph.output):
        raise ValueError(f"{source} has no output {OUTPUT_NAME!r}")
    # A bundle may already carry a head (training a QAT bundle again): name the new one apart.
    names = {name for node in graph.node for name in (*node.input, *node.output)}
    names |= {init.name for init in graph.initializer}
    index = 0
    while f"{BASE_OUTPUT}{index or ''}" in names:
        index += 1
    base = f"{BASE_OUTPUT}{index or ''}"
    prefix = f"head{index or ''}."
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == OUTPUT_NAME:
                node.output[i] = base
        for i, name in enumerate(node.input):
            if name == OUTPUT_NAME:
                node.input[i] = base

    w = np.ascontiguousarray(np.asarray(weight, dtype=np.float32).T)
    graph.initializer.append(numpy_helper.from_array(w, f"{prefix}weight_t"))
    nodes = [helper.make_node("MatMul", [base, f"{prefix}weight_t"], [f"{prefix}linear"])]
    current = f"{prefix}linear"
    if bias is not None:
        graph.initializer.append(
            numpy_helper.from_array(np.asarray(bias, dtype=np.float32), f"{prefix}bias")
        )
        nodes.append(helper.make_node("Add", [current, f"{prefix}bias"], [f"{prefix}biased"]))
        current = f"{prefix}biased"
    if normalize:
        graph.initializer.append(
            numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{prefix}axes")
        )
        graph.initializer.append(
            numpy_helper.from_array(np.array(NORMALIZE_EPS, dtype=np.float32), f"{prefix}eps")
        )
        nodes += [
            helper.make_node("Mul", [current, current], [f"{prefix}squared"]),
            helper.make_node(
                "ReduceSum", [f"{prefix}squared", f"{prefix}axes"], [f"{prefix}sum"], keepdims=1
            ),
            helper.make_node("Sqrt", [f"{prefix}sum"], [f"{prefix}norm"]),
            helper.make_node("Max", [f"{prefix}norm", f"{prefix}eps"], [f"{prefix}denominator"]),
            helper.make_node("Div", [current, f"{prefix}denominator"], [OUTPUT_NAME]),
        ]
    else:
        nodes.append(helper.make_node("Identity", [current], [OUTPUT_NAME]))
    graph.node.extend(nodes)
    # The encoder's output is now an intermediate value; describe it like the output.
    output = next(o for o in graph.output if o.name == OUTPUT_NAME)
    info = onnx.ValueInfoProto()
    info.CopyFrom(output)
    info.name = base
    graph.value_info.append(info)
    assert output.type.tensor_type.elem_type == TensorProto.FLOAT
    onnx.checker.check_model(model)
    target.write_bytes(model.SerializeToString())


# --- the head as a file (train --save-head, bake-head) ----------------------------------------
# An .npz without pickled objects: ``weight`` (d x d float32, out x in), optionally ``bias``
# (d float32), and ``about``: UTF-8 JSON with the source fingerprint, the calibration the
# training used, ``normalize``, the new bundle's name, ``binary_code_bits`` and the run summary
# that becomes the manifest's ``training``.

FORMAT = "qembed.head/v1"


@dataclass
class HeadArtifact:
    """What a head file holds (see the module docstring)."""

    weight: np.ndarray
    bias: np.ndarray | None
    source_fingerprint: str
    normalize: bool
    name: str
    calibration: CalibrationOptions
    code_lengths: dict[str, Any]
    training: dict[str, Any]


def save_head(path: Path, artifact: HeadArtifact) -> None:
    """Write the head file; the same head always gives the same bytes."""
    about = {
        "format": FORMAT,
        "source_fingerprint": artifact.source_fingerprint,
        "normalize": artifact.normalize,
        "name": artifact.name,
        "calibration": {k: v for k, v in asdict(artifact.calibration).items() if k != "cache_dir"},
        "code_lengths": artifact.code_lengths,
        "training": artifact.training,
    }
    arrays = {
        "weight": np.asarray(artifact.weight, dtype="<f4"),
        "about": np.frombuffer(json.dumps(about, sort_keys=True).encode("utf-8"), dtype=np.uint8),
    }
    if artifact.bias is not None:
        arrays["bias"] = np.asarray(artifact.bias, dtype="<f4")
    # Written entry by entry with fixed zip timestamps (np.savez stamps the current time).
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.save(buffer, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def load_head(path: Path) -> HeadArtifact:
    """Read a head file.

    Raises:
        BundleError: Not a head file of this format.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            about = json.loads(bytes(data["about"]).decode("utf-8"))
            weight = np.asarray(data["weight"], dtype=np.float32)
            bias = np.asarray(data["bias"], dtype=np.float32) if "bias" in data else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise BundleError(f"{path}: not a head file ({error})") from error
    if about.get("format") != FORMAT:
        raise BundleError(f"{path}: format {about.get('format')!r} is not {FORMAT!r}")
    if weight.ndim != 2 or weight.shape[0] != weight.shape[1]:
        raise BundleError(f"{path}: the head's weight is {weight.shape}, not square")
    return HeadArtifact(
        weight=weight,
        bias=bias,
        source_fingerprint=about["source_fingerprint"],
        normalize=bool(about["normalize"]),
        name=about["name"],
        calibration=CalibrationOptions(**about["calibration"]),
        code_lengths=about["code_lengths"],
        training=about["training"],
    )
