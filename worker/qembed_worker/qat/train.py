"""Quantization-aware training (QAT): a new bundle whose quantized codes rank like float32.

Two modes, one module each: ``head`` (:mod:`qembed_worker.qat.head_mode`: the encoder frozen, a
d x d head trained on its cached embeddings, minutes on a CPU) and ``full``
(:mod:`qembed_worker.qat.full_mode`: the whole encoder fine-tuned, for a GPU). Both share the
options (:mod:`~qembed_worker.qat.config`), the teacher's data (:mod:`~qembed_worker.qat.data`),
the loop (:mod:`~qembed_worker.qat.loop`) and the publishing of the new bundle
(:mod:`~qembed_worker.qat.publishing`), which is calibrated afresh, gets a new fingerprint and
records the run (configuration, data hashes, metrics before and after, durations) in its
manifest's ``training`` field. The teacher of self-distillation is always the source bundle's
frozen float32 embeddings.
"""

from __future__ import annotations

from typing import Any

from qembed_worker.qat.config import TrainConfig


def train(config: TrainConfig) -> dict[str, Any]:
    """Run a training job in the configured mode (see the module docstring)."""
    if config.mode == "full":
        from qembed_worker.qat.full_mode import train_full

        return train_full(config)
    from qembed_worker.qat.head_mode import train_head

    return train_head(config)
