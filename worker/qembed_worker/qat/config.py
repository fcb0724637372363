"""The options of a QAT run (``train``) and the checks that need no data.

:class:`TrainConfig` holds every option of ``python -m qembed_worker train`` (same names);
:func:`check_config` refuses inconsistent options before anything is read, and
:func:`calibration_plan` says how the new bundle's int8 ranges are computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from qembed_worker.bundle.manifest import BundleError, check_bundle, read_manifest
from qembed_worker.calibration.ranges import METHODS, CalibrationOptions
from qembed_worker.data.corpus import LEE
from qembed_worker.qat.head import HEAD_KINDS
from qembed_worker.qat.losses import ConfigError, LossOptions, QatSettings

MODES = ("head", "full")
LOSSES = ("auto", "mnrl", "distill")
RANGE_SOURCES = ("calibration", "bundle")
BATCH_SAMPLERS = ("random", "neighbors")
HEAD_INITS = ("identity", "pca")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(LossOptions):
    """Every option of a training run (the CLI's ``train`` options, same names).

    Attributes are described by ``python -m qembed_worker train --help``; the loss options are
    inherited from :class:`~qembed_worker.qat.losses.LossOptions`.
    """

    bundle: Path
    dataset: Path
    out: Path
    mode: str = "head"
    loss: str = "auto"
    split: str = "test"
    crop_queries: bool = False
    crop_words: int = 12
    head: str = "rotation"
    head_init: str = "identity"
    save_head: Path | None = None
    bias: bool = False
    center_init: bool = False
    normalize: bool = True
    int8_ranges: str | None = None
    range_refresh_steps: int = 50
    batch_size: int = 256
    batch_sampler: str = "random"
    neighbors: int = 16
    lr: float | None = None
    epochs: int = 20
    max_steps: int | None = None
    val_size: int = 500
    seed: int = 0
    checkpoint_every: int = 100
    checkpoint_dir: Path | None = None
    resume: bool = False
    calibration_corpus: str | None = None
    calibration_method: str | None = None
    calibration_quantile: float | None = None
    calibration_limit: int | None = None
    cache_dir: Path | None = None
    corpus_cache_dir: Path | None = None
    force: bool = False
    progress: bool = True
    # The new bundle's manifest name; None: <source name>-qat-<mode>. Not a training option:
    # left out of the run key, and out of to_json when not set (the manifests it wrote before).
    name: str | None = None
    # Called after each step with (step, total steps, loss): the job loop's progress reports
    # (qembed_worker.jobs.queue). Not an option: it is left out of to_json and the run key.
    on_step: Callable[[int, int, float], None] | None = field(
        default=None, repr=False, compare=False
    )

    def settings(self, kind: str = "texts") -> QatSettings:
        """The loss settings for the data kind (``texts``: distill, ``pairs``: mnrl)."""
        return QatSettings.of(self, "distill" if kind == "texts" else "mnrl")

    def learning_rate(self) -> float:
        """``lr``, or the mode's default: 1e-3 for a head, 2e-5 for the whole encoder."""
        if self.lr is not None:
            return self.lr
        return 1e-3 if self.mode == "head" else 2e-5

    def range_source(self) -> str:
        """``int8_ranges`` or the mode's default (``calibration`` for a head, else ``bundle``)."""
        if self.int8_ranges is not None:
            return self.int8_ranges
        return "calibration" if self.mode == "head" else "bundle"

    def bundle_name(self, source: dict[str, Any]) -> str:
        """``name``, or the default ``<source bundle's name>-qat-<mode>``."""
        return self.name or f"{source['name']}-qat-{self.mode}"

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-compatible values (paths as given)."""
        out: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "on_step" or (item.name == "name" and self.name is None):
                continue
            value = getattr(self, item.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        out["lr"] = self.learning_rate()
        out["int8_ranges"] = self.range_source()
        return out

    def run_key(self) -> str:
        """Hash of the options that change what is trained (resume refuses a different one)."""
        ignored = {
            "out",
            "checkpoint_dir",
            "resume",
            "cache_dir",
            "corpus_cache_dir",
            "force",
            "progress",
            "checkpoint_every",
            "max_steps",
            "save_head",
            "name",
        }
        data = {k: v for k, v in self.to_json().items() if k not in ignored}
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_config(config: TrainConfig) -> None:
    """Validate options that do not need to read any file.

    Raises:
        ConfigError: Naming the first problem.
    """
    if config.mode not in MODES:
        raise ConfigError(f"unknown --mode {config.mode!r}; use one of {MODES}")
    if config.loss not in LOSSES:
        raise ConfigError(f"unknown --loss {config.loss!r}; use one of {LOSSES}")
    config.settings().check()
    if config.head not in HEAD_KINDS:
        raise ConfigError(f"unknown --head {config.head!r}; use one of {HEAD_KINDS}")
    if config.save_head is not None and config.mode != "head":
        raise ConfigError("--save-head saves a trained head: it needs --mode head")
    if config.head_init not in HEAD_INITS:
        raise ConfigError(f"unknown --head-init {config.head_init!r}; use one of {HEAD_INITS}")
    if config.center_init and not config.bias:
        raise ConfigError("--center-init sets the head's bias: it needs --bias")
    if config.mode == "full" and (config.bias or config.center_init or config.head != "rotation"):
        raise ConfigError("--head, --bias and --center-init apply to --mode head only")
    if config.int8_ranges is not None and config.int8_ranges not in RANGE_SOURCES:
        raise ConfigError(f"unknown --int8-ranges {config.int8_ranges!r}; use {RANGE_SOURCES}")
    positive = {
        "--batch-size": config.batch_size,
        "--epochs": config.epochs,
        "--checkpoint-every": config.checkpoint_every,
        "--range-refresh-steps": config.range_refresh_steps,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    if config.batch_sampler not in BATCH_SAMPLERS:
        raise ConfigError(f"unknown --batch-sampler; use one of {BATCH_SAMPLERS}")
    if config.batch_sampler == "neighbors" and not 2 <= config.neighbors <= config.batch_size:
        raise ConfigError("--neighbors (texts per anchor group) must be between 2 and --batch-size")
    if config.crop_words < 4:
        raise ConfigError("--crop-words must be at least 4")
    if config.batch_size < 2:
        raise ConfigError("--batch-size must be at least 2 (in-batch losses)")
    if config.max_steps is not None and config.max_steps <= 0:
        raise ConfigError("--max-steps must be positive")
    if config.val_size < 0:
        raise ConfigError("--val-size must be >= 0")
    if not config.learning_rate() > 0:
        raise ConfigError("--lr must be positive")
    if config.calibration_method is not None and config.calibration_method not in METHODS:
        raise ConfigError(f"unknown --calibration-method; use one of {METHODS}")
    if config.calibration_quantile is not None and not 0 < config.calibration_quantile < 0.5:
        raise ConfigError("--calibration-quantile must be between 0 and 0.5 (exclusive)")
    if config.calibration_limit is not None and config.calibration_limit <= 0:
        raise ConfigError("--calibration-limit must be positive")


def calibration_plan(config: TrainConfig, manifest: dict[str, Any]) -> CalibrationOptions:
    """How the new bundle (and, in head mode, training) computes its int8 ranges.

    The ``--calibration-*`` options, defaulting to the source bundle's own calibration.

    Raises:
        ConfigError: The source was calibrated on a file that must be named again, or the
            method and quantile do not fit.
    """
    source = manifest["calibration"]
    corpus = config.calibration_corpus
    if corpus is None:
        name = source.get("corpus", {}).get("name")
        if name != LEE:
            raise ConfigError(
                f"the bundle was calibrated on {name!r}; pass --calibration-corpus PATH (or "
                "'lee') so that the new bundle is calibrated on real text again"
            )
        corpus = LEE
    method = config.calibration_method or source.get("method", "minmax")
    quantile = config.calibration_quantile
    if quantile is None and config.calibration_method is None:
        quantile = source.get("quantile")
    if method == "quantile" and quantile is None:
        raise ConfigError("--calibration-method quantile needs --calibration-quantile q")
    if method == "minmax":
        if config.calibration_quantile is not None:
            raise ConfigError("--calibration-quantile only applies to the quantile method")
        quantile = None
    limit = config.calibration_limit
    if limit is None and config.calibration_corpus is None:
        # The source's own corpus, cut where the source cut it (the fixture uses 400 Lee texts).
        texts = source.get("corpus", {}).get("texts")
        limit = texts if isinstance(texts, int) and texts > 0 else None
    input_type = source.get("corpus", {}).get("input_type", "document")
    return CalibrationOptions(
        corpus=corpus,
        limit=limit,
        method=method,
        quantile=quantile,
        input_type=input_type,
        cache_dir=config.corpus_cache_dir,
    )


def check_bundle_for_training(bundle: Path) -> dict[str, Any]:
    """Read the source bundle and check what training needs from it.

    Raises:
        BundleError: Missing files, no calibration ranges, or a fingerprint that no longer
            matches the files.
    """
    if not bundle.is_dir():
        raise BundleError(f"bundle folder {bundle} does not exist")
    manifest = read_manifest(bundle)
    calibration = manifest.get("calibration")
    if (
        not isinstance(calibration, dict)
        or not isinstance(calibration.get("min"), list)
        or not isinstance(calibration.get("max"), list)
    ):
        raise BundleError(
            f"{bundle}: the manifest has no calibration ranges (calibration.min/max); "
            "calibrate it first: python -m qembed_worker calibrate --help"
        )
    check_bundle(bundle, probe=False)
    return manifest
