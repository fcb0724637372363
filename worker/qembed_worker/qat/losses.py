"""Quantization-aware losses: a base loss summed over fake-quantized precisions.

``loss = Σ_p w_p(step) · L(fake_quant(embeddings, p))`` for ``p`` in the chosen subset of
``float32``, ``int8`` and ``binary``, where ``w_p(step)`` ramps linearly from 0 to ``w_p`` over
the warm-up steps for the quantized precisions (``float32`` keeps its weight from the start).
Base losses (:mod:`qembed_worker.training.losses`, shared with weight QAT):

- ``mnrl``: MultipleNegativesRanking / InfoNCE on (query, positive[, negative]) pairs: each
  query's positive against every document of the batch (positives and negatives), cross-entropy
  over ``similarity / temperature``;
- ``distill``: label-free self-distillation: for a batch of texts, the student's (quantized)
  similarity of each text to the others is matched to the frozen float32 teacher's, as the KL
  divergence between the two softmaxes over the batch (the text itself excluded).

With ``asymmetric``, the query side (the row text in ``distill``) stays float32 and only the
document side is quantized, which is how the service scores int8; otherwise both sides are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from qembed_worker.quant.codes import (
    BINARY_STE,
    PRECISIONS,
    Int8Ranges,
    code_bits,
    fake_quantize,
    is_precision,
)
from qembed_worker.training.losses import distillation_kl, mnrl

BASE_LOSSES = ("mnrl", "distill")


class ConfigError(ValueError):
    """Training options that do not fit together."""


def check_precisions(precisions: Sequence[str], weights: Sequence[float]) -> None:
    """Validate a precision subset and its weights.

    Raises:
        ConfigError: Unknown or repeated precision, a weight count that differs from the
            precision count, a negative or non-finite weight, or all weights zero.
    """
    if not precisions:
        raise ConfigError("--precisions is empty; choose from " + ", ".join(PRECISIONS))
    unknown = [p for p in precisions if not is_precision(p)]
    if unknown:
        raise ConfigError(
            f"unknown precision(s) {', '.join(unknown)}; choose from {', '.join(PRECISIONS)} "
            "or binary@N (the first N dimensions' signs, N a multiple of 8)"
        )
    if len(set(precisions)) != len(precisions):
        raise ConfigError(f"--precisions repeats a precision: {','.join(precisions)}")
    if len(weights) != len(precisions):
        raise ConfigError(
            f"--weights has {len(weights)} value(s) for {len(precisions)} precision(s) "
            f"({','.join(precisions)}): give one weight per precision, in the same order"
        )
    for precision, weight in zip(precisions, weights, strict=True):
        if not np.isfinite(weight) or weight < 0:
            raise ConfigError(f"weight of {precision} must be a finite number >= 0, got {weight}")
    if not any(w > 0 for w in weights):
        raise ConfigError("at least one --weights value must be > 0")


@dataclass(frozen=True, kw_only=True)
class LossOptions:
    """The options of the quantization-aware loss that a training run sets (``train --help``).

    Attributes:
        precisions: Precisions in the sum.
        weights: One weight per precision.
        temperature: Softmax temperature of the base loss (teacher and student alike).
        warmup_steps: Steps over which quantized weights ramp up linearly from 0.
        asymmetric: Keep the query side in float32.
        binary_ste: ``identity`` or ``clipped`` straight-through estimator for the sign.
        ste_clip: Clip threshold for ``clipped``, in units of ``1/sqrt(d)``.
        learn_scale: Learn one logit scale per quantized precision (initialised to 1) that
            multiplies the student's similarities: binary cosines are compressed (about
            ``2/pi * arcsin(cos)``), so without it part of the loss asks for a spread that
            codes cannot have instead of for the right order.
    """

    precisions: tuple[str, ...] = ("float32", "int8", "binary")
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    temperature: float = 0.05
    warmup_steps: int = 0
    asymmetric: bool = False
    binary_ste: str = "identity"
    ste_clip: float = 1.0
    learn_scale: bool = False


@dataclass(frozen=True, kw_only=True)
class QatSettings(LossOptions):
    """How the quantization-aware loss is put together: the run's options and the base loss.

    Attributes:
        base: ``mnrl`` or ``distill`` (chosen from the data, not an option of its own).
    """

    base: str = "distill"

    @classmethod
    def of(cls, options: LossOptions, base: str) -> QatSettings:
        """The settings of a run's loss options with the base loss its data calls for."""
        shared = {item.name: getattr(options, item.name) for item in fields(LossOptions)}
        shared["precisions"] = tuple(options.precisions)
        shared["weights"] = tuple(float(w) for w in options.weights)
        return cls(base=base, **shared)

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first inconsistent setting."""
        if self.base not in BASE_LOSSES:
            raise ConfigError(f"unknown base loss {self.base!r}; use one of {BASE_LOSSES}")
        check_precisions(self.precisions, self.weights)
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.warmup_steps < 0:
            raise ConfigError("warm-up steps must be >= 0")
        if self.binary_ste not in BINARY_STE:
            raise ConfigError(f"unknown binary STE {self.binary_ste!r}; use one of {BINARY_STE}")
        if not self.ste_clip > 0:
            raise ConfigError(f"STE clip must be > 0, got {self.ste_clip}")

    def weight(self, precision: str, step: int) -> float:
        """The weight of ``precision`` at ``step`` (0-based), after the linear warm-up."""
        weight = self.weights[self.precisions.index(precision)]
        if precision == "float32" or self.warmup_steps == 0:
            return weight
        return weight * min(1.0, (step + 1) / self.warmup_steps)


class QatLoss(torch.nn.Module):
    """The quantization-aware loss.

    Args:
        settings: The loss settings (checked).
        ranges: Frozen int8 calibration ranges (needed when ``int8`` is a precision).
    """

    def __init__(self, settings: QatSettings, ranges: Int8Ranges | None) -> None:
        """Check the settings and keep the ranges."""
        super().__init__()
        settings.check()
        if "int8" in settings.precisions and ranges is None:
            raise ConfigError("int8 needs calibration ranges")
        self.settings = settings
        self.ranges = ranges
        # log of each quantized precision's logit scale; trained only with learn_scale.
        self.log_scales = torch.nn.ParameterDict(
            {
                p: torch.nn.Parameter(torch.zeros(()), requires_grad=settings.learn_scale)
                for p in settings.precisions
                if p != "float32"
            }
        )

    def scale(self, precision: str) -> torch.Tensor | float:
        """The logit scale of ``precision`` (1 for float32 and without ``learn_scale``)."""
        if precision == "float32" or not self.settings.learn_scale:
            return 1.0
        return self.log_scales[precision].exp()

    def quantize(self, x: torch.Tensor, precision: str) -> torch.Tensor:
        """Fake-quantize ``x`` at ``precision`` (a new tensor; ``x`` is left intact)."""
        return fake_quantize(
            x,
            precision,
            self.ranges,
            ste=self.settings.binary_ste,
            clip=self.settings.ste_clip,
        )

    def _sides(self, rows: torch.Tensor, cols: torch.Tensor, precision: str):
        cols_q = self.quantize(cols, precision)
        rows_q = self._query_side(rows, precision)
        return rows_q, cols_q

    def _query_side(self, rows: torch.Tensor, precision: str) -> torch.Tensor:
        """The query side: quantized, or float32 (cut to a compact code's length) if asymmetric."""
        if not self.settings.asymmetric:
            return self.quantize(rows, precision)
        bits = code_bits(precision)
        return rows if bits is None else rows[..., :bits]

    def distill(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        step: int,
        query_student: torch.Tensor | None = None,
        query_teacher: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Self-distillation loss of a batch of texts.

        Args:
            student: ``(b, d)`` student embeddings.
            teacher: ``(b, d)`` frozen float32 teacher embeddings.
            step: The 0-based training step (for the warm-up).
            query_student: Optional ``(b, d)`` student embeddings of query-like texts (crops
                of the batch texts); their similarities to the batch texts form a second term,
                averaged with the text-to-text term.
            query_teacher: The teacher's embeddings of those query-like texts.

        Returns:
            The weighted sum and each precision's unweighted term.
        """
        total = student.new_zeros(())
        parts: dict[str, float] = {}
        for precision in self.settings.precisions:
            rows, cols = self._sides(student, student, precision)
            scale = self.scale(precision)
            term = distillation_kl(rows, cols, teacher, self.settings.temperature, scale)
            if query_student is not None and query_teacher is not None:
                queries = self._query_side(query_student, precision)
                crop_term = distillation_kl(
                    queries, cols, teacher, self.settings.temperature, scale, query_teacher
                )
                term = (term + crop_term) / 2
            parts[precision] = float(term.detach())
            total = total + self.settings.weight(precision, step) * term
        return total, parts

    def pairs(
        self, queries: torch.Tensor, documents: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """MultipleNegativesRanking loss of a batch of pairs (see :func:`mnrl`)."""
        total = queries.new_zeros(())
        parts: dict[str, float] = {}
        for precision in self.settings.precisions:
            rows, cols = self._sides(queries, documents, precision)
            term = mnrl(rows, cols, self.settings.temperature, self.scale(precision))
            parts[precision] = float(term.detach())
            total = total + self.settings.weight(precision, step) * term
        return total, parts
