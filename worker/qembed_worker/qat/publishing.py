"""What both QAT modes do around training: check and load first, publish the bundle last.

:func:`start_run` validates the options, the source bundle and the data before any embedding;
:func:`training_summary` is the manifest's ``training`` record; :func:`publish_trained_bundle`
writes the trained graph as a calibrated, fingerprinted bundle (``bake-head`` uses it too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from qembed_worker.bundle.manifest import TOKENIZER_FILE, BundleError
from qembed_worker.bundle.publish import announce, publish
from qembed_worker.calibration.ranges import CalibrationOptions, calibrate
from qembed_worker.data.datasets import TrainingData, load_training_data, warn
from qembed_worker.qat.config import (
    TrainConfig,
    calibration_plan,
    check_bundle_for_training,
    check_config,
)
from qembed_worker.qat.data import Prepared
from qembed_worker.qat.loop import LoopResult
from qembed_worker.qat.losses import ConfigError
from qembed_worker.quant.codes import code_bits


def start_run(config: TrainConfig) -> tuple[dict[str, Any], CalibrationOptions, TrainingData]:
    """Check and load what both modes need before training.

    The settings, the source bundle, the calibration plan, the training data, and an --out
    that may be written.

    Raises:
        ConfigError: Inconsistent settings or data of the wrong kind for the loss.
        BundleError: The source bundle cannot be trained, or --out holds files.
    """
    check_config(config)
    manifest = check_bundle_for_training(config.bundle)
    too_long = [p for p in config.precisions if (code_bits(p) or 0) >= int(manifest["dimension"])]
    if too_long:
        raise ConfigError(
            f"{', '.join(too_long)}: a compact code is shorter than the embedding "
            f"({manifest['dimension']} dimensions; plain 'binary' is the full code)"
        )
    plan = calibration_plan(config, manifest)
    data = load_training_data(config.dataset, loss=config.loss, split=config.split)
    warn(data.warnings)
    check_kind(config, data)
    if config.out.resolve() == config.bundle.resolve():
        raise ConfigError("--out must differ from --bundle")
    if config.out.exists() and any(config.out.iterdir()) and not config.force and not config.resume:
        raise BundleError(f"{config.out} is not empty; pass --force to overwrite it")
    return manifest, plan, data


def check_kind(config: TrainConfig, data: TrainingData) -> None:
    """Refuse data of the wrong kind for ``--loss`` (and self-distillation on one text)."""
    if config.loss == "mnrl" and data.kind != "pairs":
        raise ConfigError("--loss mnrl needs pairs")
    if config.loss == "distill" and data.kind != "texts":
        raise ConfigError("--loss distill needs texts")
    if data.kind == "texts" and len(data.texts) < 2:
        raise ConfigError("self-distillation needs at least 2 texts")


def training_summary(
    config: TrainConfig,
    manifest: dict[str, Any],
    data: TrainingData,
    prepared: Prepared,
    result: LoopResult,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest's ``training`` record of a run (``extra``: what only one mode records)."""
    settings = config.settings(data.kind)
    return {
        "method": "qat",
        "mode": config.mode,
        "base_loss": settings.base,
        "from_bundle": {"name": manifest["name"], "fingerprint": manifest["fingerprint"]},
        "config": config.to_json(),
        "run_key": config.run_key(),
        "data": {
            "source": str(config.dataset),
            "kind": data.kind,
            "items": len(prepared.train) + len(prepared.val),
            "train_items": len(prepared.train),
            "validation_items": len(prepared.val),
            "sha256": data.hashes,
        },
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "final_loss": result.last_loss,
        "validation": {
            "what": "fidelity@10 against the source bundle's float32 top-10, held-out "
            + (
                "texts as queries over all training texts"
                if data.kind == "texts"
                else "queries over all documents"
            ),
            "before": before,
            "after": after,
        },
        **(extra or {}),
        "durations_s": timings,
        "torch": torch.__version__.split("+")[0],
    }


def code_lengths_field(config: TrainConfig, dimension: int) -> dict[str, Any]:
    """The manifest's ``binary_code_bits`` when the run trained compact codes, else nothing.

    Without compact codes in the run, the new bundle keeps its source's field.
    A bundle lists the binary code lengths it was trained for, longest first: its full length
    and every ``binary@N`` of the run. Each takes the signs of the embedding's first ``N``
    dimensions (the head orders the dimensions for that), so the order is the graph's own.
    """
    compact = sorted({code_bits(p) for p in config.precisions if code_bits(p)}, reverse=True)
    return {"binary_code_bits": [dimension, *compact]} if compact else {}


def publish_trained_bundle(
    out: Path,
    source: Path,
    manifest: dict[str, Any],
    plan: CalibrationOptions,
    write_graph: Callable[[Path], None],
    *,
    name: str,
    training: dict[str, Any],
    code_lengths: dict[str, Any],
    progress: bool = True,
    on_calibrated: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Publish a trained graph as a bundle: the source's tokenizer, fresh ranges, the run.

    Args:
        out: The new bundle folder (replaced).
        source: The source bundle (its tokenizer is copied: it is not trained).
        manifest: The source's manifest.
        plan: How the new graph's ranges are computed.
        write_graph: Writes ``model.onnx`` into the staging folder it is given.
        name: The new manifest's ``name``.
        training: The manifest's ``training`` (the run summary).
        code_lengths: The ``binary_code_bits`` field (see :func:`code_lengths_field`), or ``{}``.
        progress: Progress bars while calibrating.
        on_calibrated: Called with the seconds calibration took, before the manifest (and so
            ``training``) is written.

    Returns:
        The manifest written.
    """
    with publish(out, force=True) as staging:
        write_graph(staging.dir)
        staging.copy_from(source, TOKENIZER_FILE)
        announce(f"calibrating the new graph on {plan.corpus} ({plan.method})")
        t0 = time.perf_counter()
        calibration = calibrate(staging.dir, manifest, plan, progress=progress)
        if on_calibrated is not None:
            on_calibrated(round(time.perf_counter() - t0, 1))
        return staging.write_manifest(
            {
                **manifest,
                "name": name,
                "calibration": calibration.to_json(),
                "training": training,
                "evaluation": None,
                **code_lengths,
            }
        )


def write_new_bundle(
    config: TrainConfig,
    manifest: dict[str, Any],
    plan: CalibrationOptions,
    write_graph: Callable[[Path], None],
    summary: dict[str, Any],
    started: float,
    timings: dict[str, float],
    export_started: float,
) -> dict[str, Any]:
    """Publish the run's bundle (:func:`publish_trained_bundle`), timing export and calibration."""
    summary["durations_s"] = timings

    def graph_then_time(folder: Path) -> None:
        write_graph(folder)
        timings["export_s"] = round(time.perf_counter() - export_started, 1)

    def calibrated(seconds: float) -> None:
        timings["calibration_s"] = seconds
        timings["total_s"] = round(time.perf_counter() - started, 1)

    return publish_trained_bundle(
        config.out,
        config.bundle,
        manifest,
        plan,
        graph_then_time,
        name=config.bundle_name(manifest),
        training=summary,
        code_lengths=code_lengths_field(config, int(manifest["dimension"])),
        progress=config.progress,
        on_calibrated=calibrated,
    )


def cli_summary(
    config: TrainConfig,
    manifest: dict[str, Any],
    new: dict[str, Any],
    result: LoopResult,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    """What ``train`` prints: the new bundle, its fingerprint, steps and validation."""
    return {
        "bundle": str(config.out),
        "from": manifest["fingerprint"],
        "fingerprint": new["fingerprint"],
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "validation_before": before["fidelity@10"] if before else None,
        "validation_after": after["fidelity@10"] if after else None,
        "durations_s": new["training"]["durations_s"],
    }
