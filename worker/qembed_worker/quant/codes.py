"""The service's quantization in numpy, and its fake-quantized twin in torch for training.

The service (``src/quantization/quantize.ts``) computes, per dimension and in float32,

    step = (max - min) / 255            (1 where that is 0)
    u    = clip(floor((x - min) / step), 0, 255);   int8 = u - 128
    binary bit = x > 0

from the bundle's frozen calibration ranges, and rescoring reads an int8 code as the centre of
its bucket, ``min + (c + 128.5) * step`` (``src/quantization/dequantize.ts``). The functions
here do the same float32 operations, so the codes are byte-identical (tested against
``test/fixtures/quantization-golden.json``).

Fake quantization never writes into its input: a cached float32 tensor stays intact.
"""

from __future__ import annotations

import math

import numpy as np
import torch

PRECISIONS = ("float32", "int8", "binary")
# A compact first-stage code: the signs of the first N dimensions (``binary@128``: 16 bytes).
CODE_PREFIX = "binary@"


def code_bits(precision: str) -> int | None:
    """``N`` of a compact binary precision ``binary@N``; ``None`` for any other precision.

    Raises:
        ValueError: ``binary@`` followed by anything but a positive multiple of 8.
    """
    if not precision.startswith(CODE_PREFIX):
        return None
    text = precision.removeprefix(CODE_PREFIX)
    if not text.isdigit() or int(text) <= 0 or int(text) % 8:
        raise ValueError(f"{precision!r}: a code length is a positive multiple of 8 bits")
    return int(text)


def is_precision(precision: str) -> bool:
    """Whether ``precision`` is one of :data:`PRECISIONS` or a valid ``binary@N``."""
    try:
        return precision in PRECISIONS or code_bits(precision) is not None
    except ValueError:
        return False


BINARY_STE = ("identity", "clipped")


# --- numpy: exactly what the service stores and scores ---------------------------------------


def int8_steps(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return the float32 bucket widths ``(max - min) / 255`` (1 where that underflows to 0)."""
    lo32 = np.asarray(lo, dtype=np.float32)
    hi32 = np.asarray(hi, dtype=np.float32)
    step = ((hi32 - lo32) / np.float32(255)).astype(np.float32)
    return np.where(step == 0, np.float32(1), step).astype(np.float32)


def int8_codes(embeddings: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Quantize float32 embeddings to the service's int8 codes.

    Args:
        embeddings: ``(n, d)`` values (rounded to float32).
        lo: Per-dimension calibration minimums.
        hi: Per-dimension calibration maximums.

    Returns:
        ``(n, d)`` int8 codes.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    lo32 = np.asarray(lo, dtype=np.float32)
    step = int8_steps(lo, hi)
    with np.errstate(over="ignore"):  # huge values overflow to inf and clip to 255, as numpy's
        u = np.floor((x - lo32) / step)
    return (np.clip(u, 0, 255) - 128).astype(np.int8)


def dequantize_int8(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return the bucket centres ``min + (c + 128.5) * step`` as float32, as the service scores."""
    lo32 = np.asarray(lo, dtype=np.float32)
    step = int8_steps(lo, hi)
    return (lo32 + step * (codes.astype(np.float32) + np.float32(128.5))).astype(np.float32)


def pack_binary(embeddings: np.ndarray) -> np.ndarray:
    """Packed sign bits ``x > 0``, first dimension in the most significant bit (``ubinary``)."""
    return np.packbits(np.asarray(embeddings, dtype=np.float32) > 0, axis=-1)


def signs(embeddings: np.ndarray) -> np.ndarray:
    """Return ``+1`` where ``x > 0`` and ``-1`` elsewhere, as int8 (the binary code's values)."""
    return np.where(np.asarray(embeddings, dtype=np.float32) > 0, 1, -1).astype(np.int8)


# --- torch: fake quantization with straight-through gradients --------------------------------


class _BinarySTE(torch.autograd.Function):
    """Sign (``x > 0`` → ``+scale``, else ``-scale``), with a straight-through gradient.

    The gradient passes unchanged (``band`` None) or only where ``|x| <= band`` (a number, or a
    tensor broadcast against ``x``: a band per component), since beyond it the sign is far from
    flipping and a gradient would only push ``|x|`` further.
    """

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, scale: float, band: float | torch.Tensor | None
    ) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.band = band
        return torch.where(x > 0, scale, -scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if ctx.band is None:
            return grad, None, None
        return grad * (x.abs() <= ctx.band).to(grad.dtype), None, None


def sign_ste(
    x: torch.Tensor, band: float | torch.Tensor | None = None, scale: float = 1.0
) -> torch.Tensor:
    """``±scale`` signs of ``x`` forward; straight-through backward, within ``band`` if given."""
    return _BinarySTE.apply(x, scale, band)


def fake_binary(x: torch.Tensor, ste: str = "identity", clip: float = 1.0) -> torch.Tensor:
    """Binary fake quantization: ``sign(x) / sqrt(d)`` forward, straight-through backward.

    The codes are scaled to unit norm so that their dot products are cosines, comparable with
    float32 cosines: ``sign(a)·sign(b) / d = 1 - 2·hamming / d``.

    Args:
        x: ``(..., d)`` embeddings; not modified.
        ste: ``identity`` (gradient passes unchanged) or ``clipped`` (gradient zeroed where
            ``|x| > clip / sqrt(d)``).
        clip: Threshold for ``clipped``, in units of ``1/sqrt(d)``.

    Returns:
        A new tensor of ``±1/sqrt(d)``.
    """
    if ste not in BINARY_STE:
        raise ValueError(f"unknown straight-through estimator {ste!r}; use one of {BINARY_STE}")
    # Clipped: no gradient beyond clip standard deviations of a unit-norm vector's component.
    scale = 1.0 / math.sqrt(x.shape[-1])
    return sign_ste(x, clip * scale if ste == "clipped" else None, scale)


class Int8Ranges(torch.nn.Module):
    """Frozen per-dimension calibration ranges and the service's int8 fake quantization.

    The ranges are buffers, never parameters and never recomputed from a batch; a training run
    replaces them only through :meth:`set_ranges` (from a whole calibration corpus).

    Args:
        lo: Per-dimension minimums (float32).
        hi: Per-dimension maximums (float32).
    """

    lo: torch.Tensor
    hi: torch.Tensor
    step: torch.Tensor

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Store the ranges as float32 buffers."""
        super().__init__()
        self.register_buffer("lo", torch.zeros(len(lo)))
        self.register_buffer("hi", torch.ones(len(lo)))
        self.register_buffer("step", torch.ones(len(lo)))
        self.set_ranges(lo, hi)

    def set_ranges(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Replace the frozen ranges (float32, ``max > min`` expected)."""
        self.lo.copy_(torch.from_numpy(np.asarray(lo, dtype=np.float32).copy()))
        self.hi.copy_(torch.from_numpy(np.asarray(hi, dtype=np.float32).copy()))
        self.step.copy_(torch.from_numpy(int8_steps(lo, hi)))

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of ``(min, max)`` as float32 numpy arrays."""
        return self.lo.detach().cpu().numpy().copy(), self.hi.detach().cpu().numpy().copy()

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Return the service's int8 codes of ``x`` as an int8 tensor (no gradient)."""
        with torch.no_grad():
            u = torch.floor((x.float() - self.lo) / self.step).clamp(0, 255)
        return (u - 128).to(torch.int8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize: replace each value by its bucket centre, straight-through gradient.

        Forward: ``min + (clip(floor((x - min) / step), 0, 255) + 0.5) * step`` in float32,
        which is the service's ``min + (c + 128.5) * step``. Backward: identity. ``x`` is not
        modified.
        """
        with torch.no_grad():
            u = torch.floor((x.float() - self.lo) / self.step).clamp(0, 255)
            centre = self.lo + (u + 0.5) * self.step
        # (x - x) is exactly 0 in value and 1 in gradient, so the value is exactly the centre
        # (x + (centre - x) would round, and overflow for huge x) and the gradient is x's.
        return (x - x.detach()) + centre.to(x.dtype)


def fake_quantize(
    x: torch.Tensor,
    precision: str,
    ranges: Int8Ranges | None = None,
    *,
    ste: str = "identity",
    clip: float = 1.0,
) -> torch.Tensor:
    """Fake-quantize embeddings at one precision.

    Args:
        x: ``(n, d)`` float32 embeddings; never modified in place.
        precision: ``float32`` (returned as is), ``int8``, ``binary`` or ``binary@N`` (the
            signs of the first ``N`` dimensions, scaled to unit norm: a compact code).
        ranges: The frozen calibration ranges, needed for ``int8``.
        ste: Binary straight-through estimator, see :func:`fake_binary`.
        clip: Binary clip threshold, see :func:`fake_binary`.

    Returns:
        The fake-quantized embeddings (a new tensor unless ``float32``).
    """
    if precision == "float32":
        return x
    if precision == "int8":
        if ranges is None:
            raise ValueError("int8 fake quantization needs calibration ranges")
        return ranges(x)
    if precision == "binary":
        return fake_binary(x, ste, clip)
    bits = code_bits(precision)
    if bits is not None:
        return fake_binary(x[..., :bits], ste, clip)
    raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
