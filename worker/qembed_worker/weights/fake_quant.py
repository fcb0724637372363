"""Fake-quantized int8 linear layers: the float model computing what the int8 graph computes.

:func:`fake_quantize_linears` swaps every ``nn.Linear`` of the encoder for an
:class:`Int8FakeQuantLinear` that computes in float32 what the int8 graph of
:func:`qembed_worker.weights.int8_graph.rewrite_per_token` computes: weights quantized per output
channel, symmetric (``scale = max|w| / 127``, ``q = clamp(round(w / scale), ±127)``),
activations quantized per token to symmetric 7-bit codes from the token's own ``max|x|``.
Rounding has a straight-through estimator: the backward pass treats quantize-dequantize as the
identity. With ``quant_noise=p`` only a random fraction ``p`` of the weight blocks is
fake-quantized at each training step, a block being one *output row* of the weight (one output
channel, the unit that shares a scale) — fairseq's Quant-Noise for scalar quantization.
Activations are always fake-quantized.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from qembed_worker.models.sources import ModelError
from qembed_worker.weights.int8_graph import (
    ACT_QMAX,
    ACT_RAW_MAX,
    FLOOR_MIN_SCALE,
    FLOOR_QMAX,
    FLOOR_ZERO_POINT,
    MIN_SCALE,
    W_QMAX,
    inverse,
)

SKIPPED_MODULES = ("pooler",)
# In a sentence-transformers model only the Transformer (module "0") is quantized: Dense heads
# act on one pooled vector per text, cost nothing, and export as Gemm, which stays float32.
TRANSFORMER_PREFIX = "0."


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


def fake_quantize_linears(
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
    """The ``nn.Linear`` layers :func:`fake_quantize_linears` wraps, in module (= forward) order."""
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
    """``(in, out)`` of the layers :func:`fake_quantize_linears` would wrap, in module order."""
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
        One entry per layer, for :func:`fake_quantize_linears`.

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
