"""The training loop both QAT modes run: batches, steps, range refreshes, checkpoints, resume.

The data order is a function of ``--seed`` and the step
(:func:`qembed_worker.training.batches.batches_for_epoch`), and a checkpoint holds the model,
the loss, the optimizer, the ranges and the random state, so a resumed run gives the same
result as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qembed_worker.bundle.publish import announce
from qembed_worker.qat.config import TrainConfig
from qembed_worker.qat.data import Prepared
from qembed_worker.qat.losses import ConfigError, QatLoss
from qembed_worker.training.batches import batches_for_epoch, nearest_neighbors

CHECKPOINT_KEEP = 2


def checkpoint_dir(config: TrainConfig) -> Path:
    """``--checkpoint-dir``, or ``<out>.checkpoints`` next to the output bundle."""
    if config.checkpoint_dir is not None:
        return config.checkpoint_dir
    return config.out.parent / f"{config.out.name}.checkpoints"


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the highest step in ``folder``, if any."""
    found = sorted(folder.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    return found[-1] if found else None


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    """Write ``step-<N>.pt`` atomically and keep only the newest few."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{state['step']}.pt"
    staging = path.with_suffix(".tmp")
    torch.save(state, staging)
    staging.replace(path)
    for old in sorted(folder.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))[
        :-CHECKPOINT_KEEP
    ]:
        old.unlink()
    return path


# --- the training loop (shared by both modes) --------------------------------------------------


@dataclass
class LoopResult:
    """What the loop reports.

    Attributes:
        steps: Steps done in total.
        resumed_from: The checkpoint step the run continued from, if any.
        last_loss: Mean loss terms over the last few steps.
        seconds: Training time of this process.
    """

    steps: int
    resumed_from: int | None
    last_loss: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def total_steps(config: TrainConfig, train_items: int) -> int:
    """Steps of the run: ``epochs`` over the training items, capped by ``max_steps``."""
    per_epoch = max(1, train_items // min(config.batch_size, train_items))
    steps = per_epoch * config.epochs
    return min(steps, config.max_steps) if config.max_steps is not None else steps


def run_loop(
    config: TrainConfig,
    prepared: Prepared,
    model: torch.nn.Module,
    student: Any,
    loss_fn: QatLoss,
    refresh_ranges: Any,
) -> LoopResult:
    """Train ``model`` with checkpoints and resume.

    Args:
        config: The run configuration.
        prepared: Indices and teacher embeddings.
        model: The trained module (its ``state_dict`` is checkpointed).
        student: ``batch indices ->`` ``(student, teacher, crop student, crop teacher)`` for
            ``texts`` (the crops ``None`` without ``--crop-queries``) or
            ``(queries, documents)`` for ``pairs``.
        loss_fn: The QAT loss.
        refresh_ranges: ``() -> None``: recompute the frozen int8 ranges from the calibration
            corpus (no-op when the bundle's ranges are kept).

    Returns:
        The loop result.
    """
    steps = total_steps(config, len(prepared.train))
    trained = [p for p in (*model.parameters(), *loss_fn.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=config.learning_rate())
    folder = checkpoint_dir(config)
    key = config.run_key()
    start = 0
    resumed_from = None
    if config.resume:
        path = latest_checkpoint(folder)
        if path is None:
            announce(f"--resume: no checkpoint in {folder}; starting from step 0")
        else:
            state = torch.load(path, weights_only=False)
            if state["run_key"] != key:
                raise ConfigError(
                    f"{path} belongs to a run with different options (run key {state['run_key']}, "
                    f"this run {key}); remove {folder} or use the same options"
                )
            model.load_state_dict(state["model"])
            loss_fn.load_state_dict(state["loss"])
            optimizer.load_state_dict(state["optimizer"])
            if loss_fn.ranges is not None and state["ranges"] is not None:
                loss_fn.ranges.set_ranges(*state["ranges"])
            torch.set_rng_state(state["torch_rng"])
            start = resumed_from = int(state["step"])
            announce(f"resuming from {path} (step {start} of {steps})")
    elif folder.exists() and latest_checkpoint(folder) is not None:
        raise ConfigError(
            f"{folder} holds checkpoints of an earlier run: pass --resume to continue it, or "
            "remove the folder"
        )
    size = min(config.batch_size, len(prepared.train))
    per_epoch = max(1, len(prepared.train) // size)
    neighbors = None
    if config.batch_sampler == "neighbors":
        if prepared.kind != "texts":
            raise ConfigError("--batch-sampler neighbors applies to self-distillation (texts)")
        neighbors = nearest_neighbors(prepared.documents, prepared.train, config.neighbors - 1)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    model.train()
    with tqdm(
        total=steps, initial=start, desc="training", unit="step", disable=not config.progress
    ) as bar:
        epoch_batches: list[np.ndarray] = []
        epoch = -1
        for step in range(start, steps):
            if step % config.range_refresh_steps == 0 and step > 0:
                refresh_ranges()
            if step // per_epoch != epoch:
                epoch = step // per_epoch
                epoch_batches = batches_for_epoch(
                    prepared.train, size, config.seed, epoch, neighbors
                )
            batch = epoch_batches[step % per_epoch]
            if prepared.kind == "texts":
                rows, teacher, crop_rows, crop_teacher = student(batch)
                loss, parts = loss_fn.distill(rows, teacher, step, crop_rows, crop_teacher)
            else:
                queries, documents = student(batch)
                loss, parts = loss_fn.pairs(queries, documents, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append({"loss": float(loss.detach()), **parts})
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            bar.update(1)
            done = step + 1
            if config.on_step is not None:
                config.on_step(done, steps, float(loss.detach()))
            if done % config.checkpoint_every == 0 and done < steps:
                save_checkpoint(
                    folder,
                    {
                        "step": done,
                        "run_key": key,
                        "model": model.state_dict(),
                        "loss": loss_fn.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "ranges": loss_fn.ranges.numpy() if loss_fn.ranges is not None else None,
                        "torch_rng": torch.get_rng_state(),
                    },
                )
    model.eval()
    tail = history[-20:]
    last = {k: round(float(np.mean([h[k] for h in tail])), 6) for k in tail[0]} if tail else {}
    return LoopResult(steps, resumed_from, last, round(time.perf_counter() - started, 1))


def remove_checkpoints(config: TrainConfig) -> None:
    """Delete this run's checkpoints once its bundle is written (and the folder if empty)."""
    folder = checkpoint_dir(config)
    if not folder.is_dir():
        return
    for path in folder.glob("step-*.pt"):
        path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()
