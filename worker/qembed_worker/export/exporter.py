"""ONNX export: one graph from token ids to the sentence embedding, plus the bundle around it."""

from __future__ import annotations

import inspect
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as functional

from qembed_worker import __version__
from qembed_worker.bundle.manifest import (
    MODEL_FILE,
    OUTPUT_NAME,
    TOKENIZER_FILE,
    Calibration,
    build_manifest,
)
from qembed_worker.bundle.publish import announce, prepare_out_dir, publish
from qembed_worker.export.architectures import check_folder
from qembed_worker.export.fusion import fuse_graph
from qembed_worker.models.sources import ModelError, load_sentence_transformer, resolve_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from qembed_worker.calibration.ranges import CalibrationOptions

MIN_OPSET = 17
# From opset 23 the exporter writes attention as one ONNX Attention node, which the fusion
# rules do not match.
MAX_OPSET = 22
# Checked at the end of every export: onnxruntime must agree with sentence-transformers.
SMOKE_TEXTS = (
    "a",
    "what is the capital of australia",
    "Canberra is the capital city of Australia, its largest inland city.",
    "Grüße aus München! 東京は日本の首都です。 🚀",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 50),
)
MIN_COSINE = 0.9999


@dataclass
class GraphSpec:
    """What the exported graph does after the transformer, read from the model's modules.

    Attributes:
        pooling: ``mean``, ``cls`` or ``lasttoken``.
        normalize: Whether the model ends with L2 normalization.
        dense: The Dense modules applied to the pooled embedding, in order.
        inputs: ONNX input names, ``token_type_ids`` only when the model takes it.
        dimension: Size of the sentence embedding.
        max_tokens: The tokenizer's truncation length.
        prompts: ``{"query": ..., "document": ...}``.
    """

    pooling: str
    normalize: bool
    dense: list[torch.nn.Module] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    dimension: int = 0
    max_tokens: int = 0
    prompts: dict[str, str] = field(default_factory=dict)

    def manifest(
        self, *, name: str, source: dict[str, Any], calibration: Calibration, **more: Any
    ) -> dict[str, Any]:
        """The manifest of a bundle of this graph (``more``: weights, training, evaluation)."""
        return build_manifest(
            name=name,
            source=source,
            dimension=self.dimension,
            max_tokens=self.max_tokens,
            pooling=self.pooling,
            normalize=self.normalize,
            prompts=self.prompts,
            onnx_inputs=self.inputs,
            calibration=calibration,
            **more,
        )

    def partial_manifest(self) -> dict[str, Any]:
        """The manifest fields an encoder of the graph needs before the bundle is complete."""
        return {"prompts": self.prompts, "onnx": {"inputs": self.inputs}}


def inspect_model(model: SentenceTransformer, max_tokens: int | None = None) -> GraphSpec:
    """Check that a model fits one ONNX graph and describe that graph.

    Supported layout: Transformer, Pooling (mean/cls/lasttoken), any Dense layers, optional
    Normalize.

    Args:
        model: The loaded sentence-transformers model.
        max_tokens: Override the model's ``max_seq_length``.

    Returns:
        The graph description.

    Raises:
        ModelError: A module, pooling mode or setting that the bundle format cannot express.
    """
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    modules = list(model)
    if len(modules) < 2 or not isinstance(modules[0], Transformer):
        raise ModelError("the model must start with a Transformer module")
    if not isinstance(modules[1], Pooling):
        raise ModelError("the Transformer must be followed by a Pooling module")
    transformer, pooling = modules[0], modules[1]
    if pooling.pooling_mode not in ("mean", "cls", "lasttoken"):
        raise ModelError(
            f"pooling {pooling.pooling_mode!r} is not supported (mean, cls, lasttoken)"
        )
    if getattr(transformer, "do_lower_case", False):
        raise ModelError("Transformer(do_lower_case=True) lowercases outside tokenizer.json")
    if transformer.query_length is not None or transformer.document_length is not None:
        raise ModelError("separate query/document lengths cannot be expressed by one max_tokens")
    prompts = {
        "query": (model.prompts or {}).get("query", ""),
        "document": (model.prompts or {}).get("document", ""),
    }
    if not pooling.include_prompt and any(prompts.values()):
        raise ModelError("Pooling(include_prompt=False) with prompts cannot live in the graph")

    dense: list[torch.nn.Module] = []
    normalize = False
    for module in modules[2:]:
        if normalize:
            raise ModelError(f"{type(module).__name__} after Normalize is not supported")
        if isinstance(module, Normalize):
            normalize = True
        elif isinstance(module, Dense):
            names = {module.module_input_name, module.module_output_name}
            if names != {OUTPUT_NAME}:
                raise ModelError("Dense layers must read and write the sentence embedding")
            dense.append(module)
        else:
            raise ModelError(f"module {type(module).__name__} is not supported in a bundle")

    tokenizer = transformer.tokenizer
    if tokenizer is None:
        raise ModelError("the Transformer module has no text tokenizer")
    takes_types = "token_type_ids" in inspect.signature(transformer.model.forward).parameters
    inputs = ["input_ids", "attention_mask"]
    if takes_types and "token_type_ids" in tokenizer.model_input_names:
        inputs.append("token_type_ids")
    limit = max_tokens if max_tokens is not None else transformer.max_seq_length
    if not limit or limit <= 0:
        raise ModelError("the model has no max_seq_length; pass --max-tokens")
    dimension = model.get_embedding_dimension()
    if dimension is None or dimension % 8:
        raise ModelError(f"dimension {dimension} is not a multiple of 8 (binary codes need it)")
    return GraphSpec(
        pooling=pooling.pooling_mode,
        normalize=normalize,
        dense=dense,
        inputs=inputs,
        dimension=int(dimension),
        max_tokens=int(limit),
        prompts=prompts,
    )


class SentenceEmbeddingGraph(torch.nn.Module):
    """Transformer, pooling, Dense layers and L2 normalization as one module for export.

    Pooling masks padding exactly like sentence-transformers' ``Pooling``, so the padding of a
    batch does not change any row's embedding.

    Args:
        transformer: The Hugging Face model returning ``last_hidden_state``.
        spec: The graph description from :func:`inspect_model`.
    """

    def __init__(self, transformer: torch.nn.Module, spec: GraphSpec) -> None:
        """Keep the modules that make up the graph."""
        super().__init__()
        self.transformer = transformer
        self.dense = torch.nn.ModuleList(spec.dense)
        self.pooling = spec.pooling
        self.normalize = spec.normalize
        self.use_token_type_ids = "token_type_ids" in spec.inputs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Map ``[batch, sequence]`` token ids to ``[batch, dimension]`` embeddings."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_type_ids:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.transformer(**kwargs).last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            embedding = summed / torch.clamp(mask.sum(dim=1), min=1e-9)
        else:
            mask32 = attention_mask.to(torch.int32)
            if self.pooling == "cls":
                # First attended position, which is 0 unless the batch is left-padded.
                index = mask32.argmax(dim=1)
            else:
                # Last attended position, whatever the padding side.
                index = attention_mask.size(1) - 1 - mask32.flip(1).argmax(dim=1)
            gather = index.view(-1, 1, 1).expand(-1, 1, hidden.size(-1))
            embedding = torch.gather(hidden, 1, gather).squeeze(1)
        for layer in self.dense:
            embedding = layer({OUTPUT_NAME: embedding})[OUTPUT_NAME]
        if self.normalize:
            embedding = functional.normalize(embedding, p=2, dim=-1)
        return embedding


def _strip_metadata(model: Any) -> None:
    """Remove what makes exports differ between machines: stack traces, paths, node names."""
    model.producer_name = "qembed-worker"
    model.producer_version = __version__
    model.doc_string = ""
    del model.metadata_props[:]
    graph = model.graph
    graph.name = "qembed"
    graph.doc_string = ""
    del graph.metadata_props[:]
    for collection in (graph.node, graph.input, graph.output, graph.value_info, graph.initializer):
        for item in collection:
            if hasattr(item, "metadata_props"):
                del item.metadata_props[:]
            if hasattr(item, "doc_string"):
                item.doc_string = ""


def export_onnx(
    model: SentenceTransformer, spec: GraphSpec, path: Path, opset: int = 18, fuse: bool = True
) -> dict[str, int]:
    """Export the model's text-to-embedding graph to ``path`` (weights embedded), fused.

    The dynamo exporter's graph gets onnxruntime's fused attention and GELU kernels
    (:func:`qembed_worker.export.fusion.fuse_graph`). Nothing here computes with the weights, so the
    file is byte-identical on every machine with the same package versions.

    Args:
        model: The sentence-transformers model.
        spec: From :func:`inspect_model`.
        path: The ``model.onnx`` to write.
        opset: ONNX opset, 17 to 22 (the fusion rules match these opsets' attention).
        fuse: Fuse attention and GELU (otherwise standard ONNX operators only).

    Returns:
        How many fused operators the graph holds (``{"MultiHeadAttention": 6, ...}``).

    Raises:
        ModelError: The opset is too old or the graph exceeds the 2 GB protobuf limit.
    """
    import onnx

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"opset {opset} is outside {MIN_OPSET}-{MAX_OPSET}")
    transformer = model[0].model.float().eval()
    graph = SentenceEmbeddingGraph(transformer, spec).eval()
    # Two rows of different lengths so that no axis is specialized to a constant.
    input_ids = torch.tensor(
        [[101, 2023, 2003, 1037, 3231, 102, 0, 0], [101, 2178, 6251, 2007, 2062, 19204, 2015, 102]]
    )
    input_ids = input_ids.clamp(max=transformer.config.vocab_size - 1)
    attention_mask = (torch.arange(8).unsqueeze(0) < torch.tensor([[6], [8]])).long()
    args: tuple[torch.Tensor, ...] = (input_ids, attention_mask)
    if "token_type_ids" in spec.inputs:
        args = (*args, torch.zeros_like(input_ids))
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: sequence} for name in spec.inputs}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            args,
            input_names=spec.inputs,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # pragma: no cover - the dynamo exporter always returns a program
        raise ModelError("torch.onnx.export returned no program")
    proto, fused = fuse_graph(program.model_proto) if fuse else (program.model_proto, {})
    _strip_metadata(proto)
    if proto.ByteSize() >= 2**31:
        raise ModelError("the model exceeds 2 GB; bundles embed their weights in model.onnx")
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())
    return fused


def write_tokenizer(source: Path | str, path: Path, max_tokens: int) -> None:
    """Write ``tokenizer.json`` truncating at ``max_tokens`` (right side) with padding disabled.

    Only the ``truncation`` and ``padding`` fields change; the rest of the file is kept as is.

    Args:
        source: A ``tokenizer.json`` path, or its JSON text.
        path: Where to write.
        max_tokens: Truncation length, special tokens included.
    """
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
    data = json.loads(text)
    data["truncation"] = {
        "direction": "Right",
        "max_length": max_tokens,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    data["padding"] = None
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


def tokenizer_source(model: SentenceTransformer, folder: Path) -> Path | str:
    """Return the model's ``tokenizer.json`` file, or the fast tokenizer's JSON if it has none."""
    if (folder / TOKENIZER_FILE).is_file():
        return folder / TOKENIZER_FILE
    tokenizer = model[0].tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelError("the model has no fast tokenizer (tokenizer.json) to ship")
    return backend.to_str()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` arrays, in float64."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    dot = (a64 * b64).sum(axis=1)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return dot / np.maximum(norms, 1e-30)


def parity(
    model: SentenceTransformer,
    bundle_dir: Path,
    manifest: dict[str, Any],
    texts: list[str],
    batch_size: int = 8,
) -> dict[str, float]:
    """Compare the bundle (onnxruntime) with ``model.encode`` for both input types.

    ``batch_size`` texts run together on each side (1: each text alone, same shapes on both).

    Returns:
        ``{"query": min cosine, "document": min cosine}``.
    """
    from qembed_worker.inference.encoder import OnnxEncoder

    encoder = OnnxEncoder(bundle_dir, manifest["prompts"], manifest["onnx"]["inputs"])
    result = {}
    for input_type in ("query", "document"):
        ours = encoder.encode(texts, input_type=input_type, batch_size=batch_size, progress=False)
        theirs = model.encode(
            texts,
            prompt=manifest["prompts"][input_type],
            batch_size=batch_size,
            convert_to_numpy=True,
        )
        result[input_type] = float(cosine_rows(ours, theirs).min())
    return result


def write_bundle(
    model: SentenceTransformer,
    folder: Path,
    out: Path,
    *,
    name: str,
    source: dict[str, Any],
    spec: GraphSpec,
    opset: int,
    calibration: CalibrationOptions,
    fuse: bool = True,
    force: bool = False,
) -> tuple[dict[str, Any], dict[str, float], dict[str, int]]:
    """Export graph and tokenizer, calibrate, and publish the bundle into ``out``.

    Args:
        model: The loaded model.
        folder: The model folder (for ``tokenizer.json``).
        out: The bundle folder.
        name: Manifest ``name``.
        source: Manifest ``source``.
        spec: From :func:`inspect_model`.
        opset: ONNX opset.
        calibration: How the ranges are computed (on the exported graph, in float64).
        fuse: Fuse attention and GELU (:func:`export_onnx`).
        force: Replace the bundle files of a non-empty ``out``.

    Returns:
        The manifest written, timings in seconds and the fused operator counts.
    """
    from qembed_worker.calibration.ranges import calibrate

    timings: dict[str, float] = {}
    with publish(out, force=force) as staging:
        announce(f"exporting the ONNX graph (opset {opset}, {spec.pooling} pooling)")
        started = time.perf_counter()
        fused = export_onnx(model, spec, staging.dir / MODEL_FILE, opset, fuse=fuse)
        write_tokenizer(
            tokenizer_source(model, folder), staging.dir / TOKENIZER_FILE, spec.max_tokens
        )
        timings["export_s"] = round(time.perf_counter() - started, 1)
        announce(f"calibrating ranges with {staging.dir / MODEL_FILE} (evaluated in float64)")
        started = time.perf_counter()
        ranges = calibrate(staging.dir, spec.partial_manifest(), calibration)
        timings["calibration_s"] = round(time.perf_counter() - started, 1)
        manifest = staging.write_manifest(
            spec.manifest(name=name, source=source, calibration=ranges)
        )
    return manifest, timings, fused


def export_bundle(
    *,
    model: str,
    out: Path,
    name: str | None = None,
    max_tokens: int | None = None,
    opset: int = 18,
    fuse: bool = True,
    force: bool = False,
    calibration: CalibrationOptions | None = None,
) -> dict[str, Any]:
    """Export a sentence-transformers model to a calibrated, checked bundle.

    Args:
        model: Alias (``all-minilm-l6-v2``, ``all-mpnet-base-v2``) or model folder (its
            architecture one of :data:`qembed_worker.export.architectures.ARCHITECTURES`).
        out: Bundle folder to write.
        name: Manifest ``name`` (default: the model's).
        max_tokens: Override the model's ``max_seq_length``.
        opset: ONNX opset.
        fuse: Fuse attention and GELU (:func:`export_onnx`).
        force: Overwrite a non-empty ``out``.
        calibration: How the ranges are computed (default: the Lee corpus, minmax).

    Returns:
        A summary: bundle path, fingerprint, parity, timings.

    Raises:
        ModelError: The model cannot be exported or the bundle disagrees with it.
    """
    from qembed_worker.calibration.ranges import CalibrationOptions

    resolved = resolve_model(model)
    # Everything that can refuse the model runs before anything is written: the folder's files,
    # then the loaded modules.
    check_folder(resolved.path)
    st_model = load_sentence_transformer(resolved.path)
    if max_tokens is not None:
        st_model.max_seq_length = max_tokens
    spec = inspect_model(st_model, max_tokens)
    prepare_out_dir(out, force=force)
    manifest, timings, fused = write_bundle(
        st_model,
        resolved.path,
        out,
        name=name or resolved.name,
        source=resolved.source,
        spec=spec,
        opset=opset,
        calibration=calibration or CalibrationOptions(),
        fuse=fuse,
        force=force,
    )
    announce(f"comparing onnxruntime with sentence-transformers on {out}")
    cosines = parity(st_model, out, manifest, list(SMOKE_TEXTS))
    if min(cosines.values()) < MIN_COSINE:
        raise ModelError(f"onnxruntime disagrees with sentence-transformers: cosine {cosines}")
    return {
        "bundle": str(out),
        "fingerprint": manifest["fingerprint"],
        "dimension": manifest["dimension"],
        "max_tokens": manifest["max_tokens"],
        "calibration": {
            "method": manifest["calibration"]["method"],
            "corpus": manifest["calibration"]["corpus"],
        },
        "smoke_parity_min_cosine": cosines,
        "fused_operators": fused,
        "model_onnx_bytes": (out / MODEL_FILE).stat().st_size,
        **timings,
    }
