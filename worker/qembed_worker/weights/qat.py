"""Weight QAT: fake-quantized int8 linear layers, self-distillation, conversion to int8 ONNX.

torchao's recipe in three steps:

1. :func:`prepare` swaps every ``nn.Linear`` of the encoder for an :class:`Int8FakeQuantLinear`
   that computes in float32 what the int8 graph computes: weights quantized per output channel,
   symmetric (``scale = max|w| / 127``, ``q = clamp(round(w / scale), ±127)``), activations
   quantized per token to symmetric 7-bit codes from the token's own ``max|x|``. Rounding has a
   straight-through estimator: the backward pass treats quantize-dequantize as the identity.
   With ``quant_noise=p`` only a random fraction ``p`` of the weight blocks is fake-quantized at
   each training step, a block being one *output row* of the weight (one output channel, the
   unit that shares a scale) — fairseq's Quant-Noise for scalar quantization. Activations are
   always fake-quantized.
2. :func:`distill` fine-tunes the prepared model to reproduce the frozen float32 teacher's
   sentence embeddings (no labels): ``1 - cos(student, teacher)`` plus the KL divergence between
   the teacher's and the student's in-batch similarity distributions (softmax over cosine /
   temperature), so that both each embedding and the geometry between texts are kept.
3. :func:`write_int8_bundle` converts: the trained float weights are exported to ONNX and every
   linear MatMul is rewritten by :func:`qembed_worker.weights.int8_graph.rewrite_per_token`, which
   quantizes the weights with the same arithmetic (bit-identical int8 codes and scales) and the
   activations per token with the same rounding, so that onnxruntime computes what the
   fake-quantized model computed (checked on the parity texts: cosine >= 0.999).

Self-distillation needs only texts: ``python -m qembed_worker weight-qat`` trains on a corpus
file's passages plus short spans cut from them (query-like inputs).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn
from tqdm import tqdm

from qembed_worker.bundle.manifest import (
    MODEL_FILE,
    TOKENIZER_FILE,
    BundleError,
    check_bundle,
    sha256_file,
)
from qembed_worker.bundle.publish import announce, prepare_out_dir, publish
from qembed_worker.calibration.ranges import CalibrationOptions, calibrate
from qembed_worker.data.corpus import load_corpus
from qembed_worker.export.exporter import (
    SMOKE_TEXTS,
    GraphSpec,
    export_onnx,
    inspect_model,
    tokenizer_source,
    write_tokenizer,
)
from qembed_worker.export.exporter import (
    parity as bundle_parity,
)
from qembed_worker.inference.embeddings import default_cache_dir, texts_sha256
from qembed_worker.models.sources import ModelError, load_sentence_transformer, resolve_source
from qembed_worker.weights.int8_graph import (
    ACT_QMAX,
    ACT_RAW_MAX,
    FLOOR_MIN_SCALE,
    FLOOR_QMAX,
    FLOOR_ZERO_POINT,
    MIN_SCALE,
    W_QMAX,
    inverse,
    linear_sites,
    rewrite_per_token,
)
from qembed_worker.weights.ptq import bundle_smoothing, weights_manifest

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# The float model's pooler is computed by the Hugging Face model but not used by the embedding
# (the exporter drops it), so it is neither fake-quantized nor counted.
SKIPPED_MODULES = ("pooler",)
# In a sentence-transformers model only the Transformer (module "0") is quantized: Dense heads
# act on one pooled vector per text, cost nothing, and export as Gemm, which stays float32.
TRANSFORMER_PREFIX = "0."
MIN_PARITY_COSINE = 0.999


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _clamp_ste(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Clamp in the forward pass, identity gradient in the backward pass.

    With scales taken from the row's own extremes nothing is really clipped (the clamp only
    guards against float rounding at the largest value), so no gradient is cut either. Both
    ``_ste`` forms are exact in the forward pass: ``x + (y - x)`` is ``y`` bit for bit when
    ``y`` is within a factor 2 of ``x`` (Sterbenz), which rounding to the grid guarantees.
    """
    return x + (torch.clamp(x, low, high) - x).detach()


def fake_quantize_weight(weight: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Quantize-dequantize an ``nn.Linear`` weight ``[out, in]`` to symmetric int8.

    Same arithmetic as :func:`qembed_worker.weights.int8_graph.quantize_weight` on the transposed
    weight. The scale is computed without gradient; rounding passes gradients straight through.

    Args:
        weight: float32 ``[out_features, in_features]``.
        per_channel: One scale per output row; otherwise one for the tensor.

    Returns:
        The dequantized weight, same shape.
    """
    with torch.no_grad():
        amax = weight.abs().amax(dim=1, keepdim=True) if per_channel else weight.abs().amax()
        scale = torch.clamp(amax / W_QMAX, min=MIN_SCALE)
    return _clamp_ste(_round_ste(weight / scale), -W_QMAX, W_QMAX) * scale


def fake_quantize_per_token(x: torch.Tensor) -> torch.Tensor:
    """Quantize-dequantize activations per token (last axis) to symmetric 7-bit codes.

    Matches the graph of :func:`qembed_worker.weights.int8_graph.rewrite_per_token`:
    ``s = max(max|x| / 63, 1e-12)``, ``q = round(x / s)`` (``|q| <= 63``).

    Args:
        x: float32 ``[..., in_features]``.

    Returns:
        ``q * s``, same shape; gradients pass straight through the rounding.
    """
    with torch.no_grad():
        scale = torch.clamp(x.abs().amax(dim=-1, keepdim=True) / ACT_QMAX, min=MIN_SCALE)
    return _clamp_ste(_round_ste(x / scale), -ACT_QMAX, ACT_QMAX) * scale


def fake_quantize_gelu_output(x: torch.Tensor) -> torch.Tensor:
    """Quantize-dequantize GELU outputs per token to uint8 codes in [0, 127] with zero point 8.

    Matches the ``gelu_floor`` subgraph of
    :func:`qembed_worker.weights.int8_graph.rewrite_per_token`:
    ``s = max(max(x) / 119, 0.17 / 8)``, ``q = clamp(round(x / s) + 8, 0, 127) - 8``.

    Args:
        x: float32 ``[..., in_features]``, GELU outputs (never below -0.17).

    Returns:
        ``q * s``, same shape; gradients pass straight through the rounding.
    """
    with torch.no_grad():
        scale = torch.clamp(x.amax(dim=-1, keepdim=True) / FLOOR_QMAX, min=FLOOR_MIN_SCALE)
    codes = _clamp_ste(_round_ste(x / scale) + FLOOR_ZERO_POINT, 0, ACT_RAW_MAX) - FLOOR_ZERO_POINT
    return codes * scale


class Int8FakeQuantLinear(nn.Module):
    """An ``nn.Linear`` computing with fake-quantized int8 weights and per-token activations.

    It shares the wrapped layer's ``weight`` and ``bias`` parameters, so optimizers and state
    dicts see the same tensors.

    Args:
        linear: The layer to wrap.
        per_channel: Per output channel weight scales.
        quant_noise: Fraction of weight rows fake-quantized per training step (Quant-Noise);
            ``0`` quantizes all of them always.
        gelu_input: The input is a GELU output: quantize it with
            :func:`fake_quantize_gelu_output` instead of symmetric int8.
        alpha: SmoothQuant factors (float32 ``[in_features]``, see
            :func:`qembed_worker.weights.int8_graph.smoothing_factors`): the layer quantizes
            ``x * inverse(alpha)`` and ``W * alpha``, which multiply back to ``x @ W.T``.
    """

    def __init__(
        self,
        linear: nn.Linear,
        per_channel: bool = True,
        quant_noise: float = 0.0,
        gelu_input: bool = False,
        alpha: np.ndarray | None = None,
    ):
        """Wrap ``linear``."""
        super().__init__()
        if not 0.0 <= quant_noise <= 1.0:
            raise ValueError(f"quant_noise must be in [0, 1], got {quant_noise}")
        self.linear = linear
        self.per_channel = per_channel
        self.quant_noise = quant_noise
        self.gelu_input = gelu_input and alpha is None
        self.alpha: np.ndarray | None = None
        if alpha is not None:
            alpha = np.asarray(alpha, dtype=np.float32)
            if alpha.shape != (linear.in_features,):
                raise ValueError(f"alpha has shape {alpha.shape}, expected ({linear.in_features},)")
            self.alpha = alpha
            self.register_buffer("smooth_alpha", torch.from_numpy(alpha.copy()), persistent=False)
            self.register_buffer(
                "smooth_inverse", torch.from_numpy(inverse(alpha)), persistent=False
            )
        # Quant-Noise is a training-time device, switched on by the training loop only.
        self.noise_active = False

    @property
    def weight(self) -> torch.Tensor:
        """The float weight being trained."""
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """The float bias (never quantized: it is added in float32 by the int8 graph too)."""
        return self.linear.bias

    def quantized_weight(self) -> torch.Tensor:
        """The weight this layer computes with now (all rows quantized unless noise is on)."""
        weight = self.linear.weight
        if self.alpha is not None:
            weight = weight * self.smooth_alpha
        quantized = fake_quantize_weight(weight, self.per_channel)
        if self.noise_active and self.quant_noise < 1.0:
            rows = torch.rand(weight.shape[0], 1, device=weight.device) < self.quant_noise
            return torch.where(rows, quantized, weight)
        return quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``fq(x) @ fq(W).T + b``."""
        if self.alpha is not None:
            x = x * self.smooth_inverse
        quantize = fake_quantize_gelu_output if self.gelu_input else fake_quantize_per_token
        return functional.linear(quantize(x), self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        """Shape and quantization settings."""
        return (
            f"in={self.linear.in_features}, out={self.linear.out_features}, "
            f"per_channel={self.per_channel}, quant_noise={self.quant_noise}, "
            f"gelu_input={self.gelu_input}, smoothed={self.alpha is not None}"
        )


def _parent(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    path = name.split(".")
    module = root
    for part in path[:-1]:
        module = getattr(module, part)
    return module, path[-1]


def _gelu_activation(model: nn.Module) -> bool:
    """Whether the model's transformer uses a GELU (erf or tanh form) as its FFN activation."""
    for module in model.modules():
        config = getattr(module, "config", None)
        act = getattr(config, "hidden_act", None)
        if isinstance(act, str):
            return act.startswith("gelu")
    return False


def prepare(
    model: nn.Module,
    *,
    per_channel: bool = True,
    quant_noise: float = 0.0,
    gelu_floor: bool = True,
    smoothing: Sequence[np.ndarray | None] | None = None,
) -> list[str]:
    """Swap the model's ``nn.Linear`` layers for :class:`Int8FakeQuantLinear` (in place).

    Args:
        model: A sentence-transformers model (or any module).
        per_channel: Per output channel weight scales.
        quant_noise: Quant-Noise fraction (see :class:`Int8FakeQuantLinear`).
        gelu_floor: In a GELU transformer, quantize the inputs of the narrowing FFN layers
            (``in_features > out_features``: the GELU outputs) as uint8 with zero point 8,
            as :func:`qembed_worker.weights.int8_graph.rewrite_per_token` does for GELU-fed MatMuls.
        smoothing: SmoothQuant factors per layer, in module order (``None`` entries: not
            smoothed), e.g. from :func:`smoothing_for`.

    Returns:
        The names of the wrapped layers, in module order.

    Raises:
        ValueError: ``smoothing`` does not have one entry per layer.
    """
    gelu = gelu_floor and _gelu_activation(model)
    todo = _linears(model)
    if smoothing is not None and len(smoothing) != len(todo):
        raise ValueError(f"{len(smoothing)} smoothing entries for {len(todo)} linear layers")
    names = []
    for index, (name, module) in enumerate(todo):
        parent, attr = _parent(model, name)
        gelu_input = gelu and module.in_features > module.out_features
        alpha = smoothing[index] if smoothing is not None else None
        layer = Int8FakeQuantLinear(module, per_channel, quant_noise, gelu_input, alpha)
        setattr(parent, attr, layer)
        names.append(name)
    return names


def _linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` layers :func:`prepare` wraps, in module (= forward) order."""
    from sentence_transformers import SentenceTransformer

    only_transformer = isinstance(model, SentenceTransformer)
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and not any(s in name for s in SKIPPED_MODULES)
        and (not only_transformer or name.startswith(TRANSFORMER_PREFIX))
        and not isinstance(_parent(model, name)[0], Int8FakeQuantLinear)
    ]


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """``(in, out)`` of the layers :func:`prepare` would wrap, in module order."""
    return [(module.in_features, module.out_features) for _, module in _linears(model)]


def smoothing_for(
    model: nn.Module, sites: Sequence[Any], factors: dict[int, np.ndarray]
) -> list[np.ndarray | None]:
    """Map SmoothQuant factors of ONNX sites (by index) onto the model's layers (by order).

    Args:
        model: The unprepared model.
        sites: The float32 graph's linear sites.
        factors: ``{site index: alpha}``.

    Returns:
        One entry per layer, for :func:`prepare`.

    Raises:
        ModelError: The graph's linear layers are not the model's.
    """
    shapes = linear_shapes(model)
    if shapes != [site.shape for site in sites]:
        raise ModelError("the bundle's linear MatMuls are not its source model's linear layers")
    return [factors.get(site.index) for site in sites]


def fake_quant_layers(model: nn.Module) -> list[Int8FakeQuantLinear]:
    """The model's fake-quantized layers."""
    return [m for m in model.modules() if isinstance(m, Int8FakeQuantLinear)]


def set_quant_noise(model: nn.Module, active: bool) -> None:
    """Switch Quant-Noise on (training steps) or off (evaluation, export: all rows quantized)."""
    for layer in fake_quant_layers(model):
        layer.noise_active = active


@contextlib.contextmanager
def float_linears(model: nn.Module) -> Iterator[int]:
    """Temporarily put the plain ``nn.Linear`` layers back (for the float32 ONNX export).

    Yields:
        How many layers were unwrapped.
    """
    swapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, Int8FakeQuantLinear):
            parent, attr = _parent(model, name)
            setattr(parent, attr, module.linear)
            swapped.append((parent, attr, module))
    try:
        yield len(swapped)
    finally:
        for parent, attr, module in swapped:
            setattr(parent, attr, module)


@dataclass
class DistillConfig:
    """Self-distillation settings.

    Attributes:
        epochs: Passes over the training texts.
        batch_size: Texts per step.
        lr: Peak AdamW learning rate (linear warm-up over ``warmup`` of the steps, then linear
            decay to zero).
        warmup: Fraction of the steps spent warming up.
        kl_weight: Weight of the in-batch similarity KL term.
        temperature: Softmax temperature of the similarity distributions.
        spans_per_text: Short spans (query-like inputs) cut from each text, added to the data.
        span_words: ``(min, max)`` words of a span.
        max_tokens: Truncation during training (``None``: the model's).
        seed: Seeds shuffling, spans and Quant-Noise.
        max_steps: Stop after this many steps (``None``: all epochs).
    """

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 2e-5
    warmup: float = 0.1
    kl_weight: float = 1.0
    temperature: float = 0.05
    spans_per_text: int = 1
    span_words: tuple[int, int] = (3, 12)
    max_tokens: int | None = None
    seed: int = 0
    max_steps: int | None = None


def make_spans(texts: Sequence[str], config: DistillConfig) -> list[str]:
    """Cut short word spans out of the texts (seeded), as query-like training inputs."""
    rng = random.Random(config.seed)
    low, high = config.span_words
    spans = []
    for text in texts:
        words = text.split()
        for _ in range(config.spans_per_text):
            if len(words) <= low:
                spans.append(text)
                continue
            size = rng.randint(low, min(high, len(words)))
            start = rng.randint(0, len(words) - size)
            spans.append(" ".join(words[start : start + size]))
    return spans


def embed_texts(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    grad: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Sentence embeddings of texts through the sentence-transformers modules, in input order.

    Unlike ``model.encode`` this keeps the autograd graph when ``grad`` is set.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks = []
    context = contextlib.nullcontext() if grad else torch.no_grad()
    with context, tqdm(total=len(texts), desc="teacher", unit="text", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            features = model.tokenize([texts[i] for i in index])
            chunks.append(model(features)["sentence_embedding"])
            bar.update(len(index))
    embeddings = torch.cat(chunks)
    result = torch.empty_like(embeddings)
    result[torch.tensor(order)] = embeddings
    return result


def teacher_cache(
    teacher: SentenceTransformer,
    texts: Sequence[str],
    *,
    key: str,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The teacher's embeddings of ``texts``, cached on disk (they take minutes on a CPU).

    Args:
        teacher: The frozen float32 model.
        texts: The training texts (prompts included).
        key: Names the teacher and its truncation (bundle fingerprint and max tokens).
        cache_dir: Default: the embedding cache of ``eval-bundle``
            (``$QEMBED_EMBEDDING_CACHE`` or ``~/.cache/qembed/embeddings``).
        progress: Show a tqdm bar when computing.

    Returns:
        float32 ``[len(texts), dim]``.
    """
    folder = cache_dir or default_cache_dir()
    path = folder / f"weight-qat-teacher-{key}-{texts_sha256(texts)[:24]}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return torch.from_numpy(cached)
    embeddings = embed_texts(teacher, texts, batch_size=64, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp.npy")
    np.save(staging, embeddings.numpy())
    staging.replace(path)
    return embeddings


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, *, kl_weight: float, temperature: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``mean(1 - cos(s, t)) + kl_weight * KL(P_teacher || P_student)`` over a batch.

    ``P`` is the softmax over each row of the in-batch cosine similarity matrix divided by
    ``temperature`` (self-similarity included).

    Args:
        student: ``[batch, dim]`` student embeddings (with gradient).
        teacher: ``[batch, dim]`` teacher embeddings.
        kl_weight: Weight of the KL term.
        temperature: Softmax temperature.

    Returns:
        The loss and its parts as floats.
    """
    s = functional.normalize(student, dim=-1)
    t = functional.normalize(teacher, dim=-1)
    cosine = (s * t).sum(dim=-1)
    loss_cos = (1 - cosine).mean()
    log_p_student = functional.log_softmax(s @ s.T / temperature, dim=-1)
    log_p_teacher = functional.log_softmax(t @ t.T / temperature, dim=-1)
    kl = functional.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    loss = loss_cos + kl_weight * kl
    return loss, {
        "loss": float(loss.detach()),
        "cos": float(cosine.detach().mean()),
        "kl": float(kl.detach()),
    }


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (little padding), in shuffled order."""
    index = list(range(len(lengths)))
    rng.shuffle(index)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(index), pool):
        chunk = sorted(index[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def distill(
    student: SentenceTransformer,
    teacher_embeddings: torch.Tensor,
    texts: Sequence[str],
    config: DistillConfig,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a prepared student to reproduce the teacher's embeddings of ``texts``.

    The student runs in evaluation mode (no dropout: the target is deterministic), with
    Quant-Noise switched on during the steps and off at the end.

    Args:
        student: The model after :func:`prepare`.
        teacher_embeddings: ``[len(texts), dim]`` float32 embeddings of the frozen teacher.
        texts: The training texts, with any prompt already prepended.
        config: Settings.
        progress: Show a tqdm bar.

    Returns:
        Steps, minutes and the loss history summary.
    """
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if config.max_tokens is not None:
        student.max_seq_length = config.max_tokens
    lengths = [len(t) for t in texts]
    per_epoch = math.ceil(len(texts) / config.batch_size)
    total = math.ceil(per_epoch * config.epochs)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    warmup = max(1, int(total * config.warmup))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    student.eval()
    set_quant_noise(student, True)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    step = 0
    try:
        with tqdm(total=total, desc="weight QAT", unit="step", disable=not progress) as bar:
            while step < total:
                for batch in _batches(lengths, config.batch_size, rng):
                    if step >= total:
                        break
                    features = student.tokenize([texts[i] for i in batch])
                    embeddings = student(features)["sentence_embedding"]
                    loss, parts = distillation_loss(
                        embeddings,
                        teacher_embeddings[batch],
                        kl_weight=config.kl_weight,
                        temperature=config.temperature,
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    history.append(parts)
                    step += 1
                    bar.update(1)
                    bar.set_postfix(cos=f"{parts['cos']:.5f}", kl=f"{parts['kl']:.4f}")
    finally:
        set_quant_noise(student, False)
    minutes = (time.perf_counter() - started) / 60

    def mean(key: str, part: list[dict[str, float]]) -> float | None:
        return round(float(np.mean([h[key] for h in part])), 6) if part else None

    window = max(1, len(history) // 10)
    return {
        "steps": step,
        "minutes": round(minutes, 2),
        "first_steps": {k: mean(k, history[:window]) for k in ("loss", "cos", "kl")},
        "last_steps": {k: mean(k, history[-window:]) for k in ("loss", "cos", "kl")},
    }


def export_int8_onnx(
    model: SentenceTransformer, spec: GraphSpec, path: Path, *, per_channel: bool = True
) -> int:
    """Convert a prepared model to the int8 ONNX graph that matches its fake quantization.

    Args:
        model: The model after :func:`prepare` (and training).
        spec: From :func:`qembed_worker.export.exporter.inspect_model`.
        path: The ``model.onnx`` to write.
        per_channel: Must equal the setting used by :func:`prepare`.

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


def parity(
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
    return bundle_parity(model, bundle_dir, manifest, texts, batch_size=1)


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
        model: The model after :func:`prepare` and training.
        folder: A folder with the model's ``tokenizer.json`` (or the model's fast tokenizer is
            used).
        out: The bundle folder (existing bundle files are replaced).
        name: Manifest ``name``.
        source: Manifest ``source``.
        spec: From :func:`qembed_worker.export.exporter.inspect_model`.
        calibration: How the int8 graph's ranges are computed.
        per_channel: The weight granularity used by :func:`prepare`.
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
        cosines = parity(model, staging.dir, manifest, parity_texts or list(SMOKE_TEXTS))
        if min(cosines.values()) < MIN_PARITY_COSINE:
            raise ModelError(f"the int8 graph disagrees with the fake-quantized model: {cosines}")
    return manifest, cosines


def weight_qat_bundle(
    *,
    bundle: Path,
    data: str,
    out: Path,
    config: DistillConfig,
    per_channel: bool = True,
    quant_noise: float = 0.0,
    gelu_floor: bool = True,
    smooth: bool = True,
    limit: int | None = None,
    name: str | None = None,
    parity_texts: list[str] | None = None,
    save_model: Path | None = None,
    force: bool = False,
    calibration: CalibrationOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Weight QAT of a float32 bundle's model by self-distillation, written as an int8 bundle.

    The teacher and starting point is the original sentence-transformers model named by the
    bundle's ``source`` (weights verified), with the bundle's ``max_tokens`` and prompts.

    Args:
        bundle: The float32 bundle.
        data: Training texts: a BEIR folder (its ``corpus.jsonl``; queries and judgments are
            not read) or a corpus file (see :func:`qembed_worker.data.corpus.load_corpus`).
        out: The int8 bundle folder to write.
        config: Distillation settings.
        per_channel: Per output channel weight scales.
        quant_noise: Quant-Noise fraction ``p`` (``0``: quantize every weight row every step).
        gelu_floor: Quantize GELU outputs as uint8 with zero point 8 (see :func:`prepare`).
        smooth: SmoothQuant the attention and widening FFN layers, with factors computed from
            the float32 bundle's activations on the Lee corpus
            (:func:`qembed_worker.weights.ptq.bundle_smoothing`), fixed during training.
        limit: Use the first ``limit`` training texts.
        name: Manifest ``name`` (default: the bundle's, with ``-int8-qat``).
        parity_texts: Texts for the PyTorch-vs-ONNX parity check (default: a few built in).
        save_model: Also save the fine-tuned float weights as a sentence-transformers folder.
        force: Overwrite a non-empty ``out``.
        calibration: How the int8 graph's ranges are computed (default: the Lee corpus, with
            the source bundle's method, quantile and input type).
        progress: Show tqdm bars.

    Returns:
        A summary: fingerprint, training, parity.

    Raises:
        BundleError: The source is not a float32 bundle.
        ModelError: Parity below 0.999 or a graph that does not match.
    """
    source_manifest = check_bundle(bundle, probe=False)
    precision = (source_manifest.get("weights") or {}).get("precision")
    if precision != "float32":
        raise BundleError(f"{bundle} has {precision} weights; weight QAT starts from float32")
    resolved = resolve_source(source_manifest["source"])
    prepare_out_dir(out, force=force)
    data_path = Path(data)
    corpus = load_corpus(
        str(data_path / "corpus.jsonl") if data_path.is_dir() else data, limit=limit
    )
    teacher = load_sentence_transformer(resolved.path)
    max_tokens = int(source_manifest["max_tokens"])
    teacher.max_seq_length = max_tokens
    spec = inspect_model(teacher, max_tokens)
    if spec.prompts != source_manifest["prompts"]:
        raise BundleError(f"{bundle}'s prompts are not its source model's")
    prompt = spec.prompts.get("document", "")
    # Training may truncate harder than the bundle (speed); teacher and student alike.
    teacher.max_seq_length = min(config.max_tokens or max_tokens, max_tokens)
    spans = make_spans(corpus.texts, config)
    texts = [prompt + t for t in [*corpus.texts, *spans]]
    announce(
        f"teacher embeddings of {len(corpus.texts)} texts + {len(spans)} spans from {corpus.name}"
    )
    started = time.perf_counter()
    teacher.eval()
    teacher_embeddings = teacher_cache(
        teacher,
        texts,
        key=f"{source_manifest['fingerprint']}-{teacher.max_seq_length}",
        progress=progress,
    )
    teacher_minutes = (time.perf_counter() - started) / 60
    student = copy.deepcopy(teacher)
    del teacher
    smoothing, smoothing_info = None, None
    if smooth:
        import onnx

        announce("SmoothQuant factors from the float32 bundle's activations")
        factors, smoothing_info = bundle_smoothing(bundle, source_manifest)
        sites = linear_sites(onnx.load(str(bundle / MODEL_FILE)))
        smoothing = smoothing_for(student, sites, factors)
    layers = prepare(
        student,
        per_channel=per_channel,
        quant_noise=quant_noise,
        gelu_floor=gelu_floor,
        smoothing=smoothing,
    )
    announce(
        f"weight QAT: {len(layers)} linear layers fake-quantized (int8 per-channel weights, "
        f"per-token activations{f', Quant-Noise p={quant_noise}' if quant_noise else ''})"
    )
    run = distill(student, teacher_embeddings, texts, config, progress=progress)
    student.max_seq_length = max_tokens
    if save_model is not None:
        with float_linears(student):
            student.save(str(save_model))
    training = {
        "kind": "weight-qat",
        "teacher": {"bundle": source_manifest["fingerprint"], **resolved.source},
        "data": {
            "name": corpus.name,
            "sha256": corpus.sha256,
            "texts": len(corpus.texts),
            "spans": len(spans),
            "input_type": "document",
        },
        "config": {
            **asdict(config),
            "per_channel": per_channel,
            "quant_noise": quant_noise,
            "gelu_floor": gelu_floor,
            "smoothing": smoothing_info,
        },
        "teacher_minutes": round(teacher_minutes, 2),
        **run,
        "torch_threads": torch.get_num_threads(),
    }
    source_ranges = source_manifest["calibration"]
    calibration = calibration or CalibrationOptions(
        method=source_ranges["method"],
        quantile=source_ranges.get("quantile"),
        input_type=source_ranges["corpus"]["input_type"],
    )
    manifest, cosines = write_int8_bundle(
        student,
        resolved.path,
        out,
        name=name or f"{source_manifest['name']}-int8-qat",
        source=source_manifest["source"],
        spec=spec,
        calibration=calibration,
        per_channel=per_channel,
        training=training,
        qat="weight QAT, self-distillation"
        + (f", Quant-Noise p={quant_noise}" if quant_noise else ""),
        source_fingerprint=source_manifest["fingerprint"],
        parity_texts=parity_texts,
        smoothing=smoothing_info,
    )
    return {
        "bundle": str(out),
        "from": source_manifest["fingerprint"],
        "fingerprint": manifest["fingerprint"],
        "weights": manifest["weights"],
        "training": {k: training[k] for k in ("steps", "minutes", "first_steps", "last_steps")},
        "parity_min_cosine": cosines,
        "model_onnx_bytes": (out / MODEL_FILE).stat().st_size,
        "model_onnx_sha256": sha256_file(out / MODEL_FILE),
    }
