"""Quantization-aware training (QAT): a new bundle whose quantized codes rank like float32.

Two modes:

- ``head``: the bundle's encoder stays frozen; its float32 embeddings of the training texts are
  computed once with the bundle's own ``model.onnx`` and cached (keyed by the bundle
  fingerprint and the texts' hash); a dxd head (identity at start) is trained on them under the
  quantization-aware loss, then appended to the ONNX graph. Minutes on a CPU.
- ``full``: the whole sentence-transformers encoder behind the bundle is fine-tuned (meant for a
  GPU; a few steps run on a CPU as a smoke test) and exported with
  :mod:`qembed_worker.export.exporter`.

Either way the new bundle is calibrated afresh (its own graph on the calibration corpus), gets
a new fingerprint, and records the run (configuration, data hashes, metrics before and after,
durations) in its manifest's ``training`` field. The teacher of self-distillation is always the
source bundle's frozen float32 embeddings.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qembed_worker.bundle.manifest import (
    COMPACT_CODE_BITS,
    MODEL_FILE,
    TOKENIZER_FILE,
    BundleError,
    check_bundle,
    read_manifest,
)
from qembed_worker.bundle.publish import announce, publish
from qembed_worker.calibration.ranges import METHODS, CalibrationOptions, calibrate, compute_ranges
from qembed_worker.data.corpus import LEE, load_corpus
from qembed_worker.data.datasets import TrainingData, load_training_data, warn
from qembed_worker.eval.evaluate import fidelity, top_k
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.qat.head import (
    HEAD_KINDS,
    Head,
    HeadArtifact,
    bake_head,
    principal_axes,
    save_head,
)
from qembed_worker.qat.losses import ConfigError, LossOptions, QatLoss, QatSettings
from qembed_worker.quant.codes import (
    Int8Ranges,
    code_bits,
    dequantize_int8,
    int8_codes,
    signs,
)

MODES = ("head", "full")
LOSSES = ("auto", "mnrl", "distill")
RANGE_SOURCES = ("calibration", "bundle")
BATCH_SAMPLERS = ("random", "neighbors")
CHECKPOINT_KEEP = 2
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

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-compatible values (paths as given)."""
        out: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "on_step":
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


# --- data on the encoder side ------------------------------------------------------------------


@dataclass
class Prepared:
    """Training data turned into indices into cached teacher embeddings.

    Attributes:
        kind: ``texts`` or ``pairs``.
        documents: ``(n, d)`` float32 teacher embeddings of the document-side texts.
        queries: ``(m, d)`` float32 teacher embeddings of queries (pairs only).
        doc_texts: The document-side texts (full mode embeds them again).
        query_texts: The query texts (pairs only).
        pairs: ``(query index, positive index, negative index or -1)`` rows (pairs only).
        train: Indices of training items (texts, or pair rows).
        val: Indices of held-out items.
        crops: ``(n, d)`` teacher embeddings of one query-like crop per text (query prompt),
            when ``--crop-queries`` is set.
        crop_texts: The crops' texts (all texts when ``crops`` is set).
        val_crops: Teacher embeddings of the held-out texts' crops (texts only): a query-like
            validation set, whether or not crops are trained on.
    """

    kind: str
    documents: np.ndarray
    queries: np.ndarray | None
    doc_texts: list[str]
    query_texts: list[str]
    pairs: np.ndarray | None
    train: np.ndarray
    val: np.ndarray
    crops: np.ndarray | None = None
    crop_texts: list[str] = field(default_factory=list)
    val_crops: np.ndarray | None = None


def crop_texts(texts: list[str], seed: int, max_words: int, min_words: int = 4) -> list[str]:
    """One query-like crop per text: a random run of ``min_words``..``max_words`` words.

    Label-free pseudo-queries in the spirit of Contriever's random cropping: short spans of the
    corpus stand in for the short queries that a corpus alone does not contain. Texts shorter
    than the drawn length are kept whole. A pure function of ``seed``.
    """
    rng = np.random.default_rng([seed, 104729])
    crops = []
    for text in texts:
        words = text.split()
        length = int(rng.integers(min_words, max_words + 1))
        if len(words) <= length:
            crops.append(text)
            continue
        start = int(rng.integers(0, len(words) - length + 1))
        crops.append(" ".join(words[start : start + length]))
    return crops


def _split(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``min(val_size, n // 5)`` items chosen by the seed; the rest train."""
    size = min(val_size, n // 5)
    order = np.random.default_rng([seed, 7919]).permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])


def prepare(
    data: TrainingData, bundle: Path, manifest: dict[str, Any], config: TrainConfig
) -> Prepared:
    """Embed (or read from the cache) the teacher embeddings of the training data."""
    common = {"cache_dir": config.cache_dir, "manifest": manifest, "progress": config.progress}
    if data.kind == "texts":
        documents = bundle_embeddings(bundle, data.texts, "document", label="training", **common)
        train, val = _split(len(data.texts), config.val_size, config.seed)
        crops = None
        all_crops = crop_texts(data.texts, config.seed, config.crop_words)
        if config.crop_queries:
            crops = bundle_embeddings(bundle, all_crops, "query", label="query-like crop", **common)
            val_crops = crops[val]
        elif len(val) == 0:
            val_crops = None
        else:
            val_crops = bundle_embeddings(
                bundle, [all_crops[i] for i in val], "query", label="validation crop", **common
            )
        return Prepared(
            "texts",
            documents,
            None,
            data.texts,
            [],
            None,
            train,
            val,
            crops,
            all_crops if config.crop_queries else [],
            val_crops if len(val) and val_crops is not None else None,
        )
    query_texts = list(dict.fromkeys(p.query for p in data.pairs))
    doc_texts = list(
        dict.fromkeys(t for p in data.pairs for t in (p.positive, p.negative) if t is not None)
    )
    query_index = {t: i for i, t in enumerate(query_texts)}
    doc_index = {t: i for i, t in enumerate(doc_texts)}
    rows = np.array(
        [
            (
                query_index[p.query],
                doc_index[p.positive],
                doc_index[p.negative] if p.negative is not None else -1,
            )
            for p in data.pairs
        ],
        dtype=np.int64,
    )
    queries = bundle_embeddings(bundle, query_texts, "query", label="training query", **common)
    documents = bundle_embeddings(
        bundle, doc_texts, "document", label="training document", **common
    )
    train, val = _split(len(rows), config.val_size, config.seed)
    return Prepared("pairs", documents, queries, doc_texts, query_texts, rows, train, val)


def batches_for_epoch(
    train: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    neighbors: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of ``(seed, epoch)``.

    Without ``neighbors``: a permutation of the training items cut into full batches (the last
    partial batch is dropped). With ``neighbors`` (``neighbors[i]`` = item ``i``'s nearest
    training items by teacher similarity, nearest first): each batch takes the next anchors of
    the permutation together with their neighbours (``k`` items per anchor group), skipping
    items already in the batch, so in-batch similarities are decided among near neighbours —
    where a top-10 is decided. Drawing each epoch's order from its own seed makes the data order
    a pure function of the step, so a resumed run sees exactly the batches an uninterrupted one
    would.
    """
    size = min(batch_size, len(train))
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(train)
    count = len(order) // size
    if neighbors is None:
        return [order[i * size : (i + 1) * size] for i in range(count)]
    batches = []
    cursor = 0
    for _ in range(count):
        chosen: dict[int, None] = {}
        while len(chosen) < size:
            anchor = int(order[cursor % len(order)])
            cursor += 1
            for item in (anchor, *neighbors[anchor].tolist()):
                if len(chosen) == size:
                    break
                if item >= 0:
                    chosen.setdefault(int(item), None)
        batches.append(np.fromiter(chosen, dtype=np.int64, count=size))
    return batches


def nearest_neighbors(embeddings: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """For every row of ``embeddings``, its ``k`` most similar rows among ``items``.

    Args:
        embeddings: ``(n, d)`` teacher embeddings.
        items: The indices allowed as neighbours (the training items).
        k: Neighbours per row (the row itself excluded).

    Returns:
        ``(n, k)`` int64 indices into ``embeddings`` (``-1`` pads when fewer exist); rows that
        are not in ``items`` keep ``-1``.
    """
    out = np.full((len(embeddings), k), -1, dtype=np.int64)
    pool = embeddings[items].astype(np.float32)
    for start in range(0, len(items), 1024):
        rows = items[start : start + 1024]
        scores = embeddings[rows].astype(np.float32) @ pool.T
        scores[np.arange(len(rows)), np.searchsorted(items, rows)] = -np.inf
        found = top_k(scores, k)
        out[rows, : found.shape[1]] = items[found]
    return out


# --- validation: label-free fidelity of the quantized rankings ---------------------------------


def validation_metrics(
    student_queries: np.ndarray,
    student_docs: np.ndarray,
    teacher_queries: np.ndarray,
    teacher_docs: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    positives: np.ndarray | None = None,
    code_lengths: Sequence[int] = COMPACT_CODE_BITS,
) -> dict[str, Any]:
    """Fidelity@10 of each precision's ranking against the teacher's float32 top-10.

    Modes as the service scores them: ``float32``, ``int8`` (float32 query against int8
    documents under ``lo``/``hi``), ``binary`` (Hamming) and ``binary@N`` (Hamming over the
    first ``N`` dimensions' signs, for each of ``code_lengths`` shorter than the embedding).

    Args:
        student_queries: ``(q, d)`` student query embeddings.
        student_docs: ``(n, d)`` student document embeddings.
        teacher_queries: ``(q, d)`` teacher query embeddings.
        teacher_docs: ``(n, d)`` teacher document embeddings.
        lo: int8 calibration minimums of the student.
        hi: int8 calibration maximums of the student.
        exclude: For each query, a document index to leave out (the query itself), or None.
        positives: For each query, its positive document (pairs), to report hit@10.
        code_lengths: Compact code lengths to report (those shorter than the embedding).

    Returns:
        ``{"queries": q, "fidelity@10": {mode: value}, "hit@10": {mode: value}?}``.
    """

    def mask(scores: np.ndarray) -> np.ndarray:
        if exclude is not None:
            scores[np.arange(len(exclude)), exclude] = -np.inf
        return scores

    q64 = student_queries.astype(np.float64)
    reference = top_k(
        mask(teacher_queries.astype(np.float64) @ teacher_docs.astype(np.float64).T), 10
    )
    dequantized = dequantize_int8(int8_codes(student_docs, lo, hi), lo, hi).astype(np.float64)

    def hamming_top(bits: int) -> np.ndarray:
        # ±1 dot products are integers below 2**24: exact in float32, ordered like -Hamming.
        dot = signs(student_queries[:, :bits]).astype(np.float32) @ (
            signs(student_docs[:, :bits]).astype(np.float32).T
        )
        return top_k(mask(dot.astype(np.float64)), 10)

    dimension = student_docs.shape[1]
    rankings = {
        "float32": top_k(mask(q64 @ student_docs.astype(np.float64).T), 10),
        "int8": top_k(mask(q64 @ dequantized.T), 10),
        "binary": hamming_top(dimension),
        **{
            f"binary@{bits}": hamming_top(bits)
            for bits in sorted(set(code_lengths), reverse=True)
            if bits < dimension
        },
    }
    result: dict[str, Any] = {
        "queries": len(student_queries),
        "fidelity@10": {m: round(fidelity(r, reference), 4) for m, r in rankings.items()},
    }
    if positives is not None:
        result["hit@10"] = {
            m: round(float(np.mean([p in row for p, row in zip(positives, r, strict=True)])), 4)
            for m, r in rankings.items()
        }
    return result


# --- checkpoints -------------------------------------------------------------------------------


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


# --- head mode ---------------------------------------------------------------------------------


def calibration_embeddings_for(
    plan: CalibrationOptions, bundle: Path, manifest: dict[str, Any], config: TrainConfig
) -> np.ndarray:
    """The bundle's embeddings of the calibration corpus the plan names."""
    corpus = load_corpus(plan.corpus, limit=plan.limit, cache_dir=plan.cache_dir)
    return bundle_embeddings(
        bundle,
        corpus.texts,
        plan.input_type,
        cache_dir=config.cache_dir,
        manifest=manifest,
        label="calibration",
        progress=config.progress,
    )


def head_validation(
    head: Head,
    prepared: Prepared,
    lo: np.ndarray,
    hi: np.ndarray,
    code_lengths: Sequence[int] = COMPACT_CODE_BITS,
) -> dict[str, Any] | None:
    """Validation metrics of the head's quantized embeddings (None without a validation split).

    ``code_lengths``: the compact codes to report besides the full one (those shorter than the
    embedding).
    """
    if len(prepared.val) == 0:
        return None
    with torch.no_grad():
        docs = head(torch.from_numpy(prepared.documents)).numpy()
        if prepared.kind == "texts":
            metrics = validation_metrics(
                docs[prepared.val],
                docs,
                prepared.documents[prepared.val],
                prepared.documents,
                lo,
                hi,
                exclude=prepared.val,
                code_lengths=code_lengths,
            )
            if prepared.val_crops is not None:
                crops = prepared.val_crops
                crop_metrics = validation_metrics(
                    head(torch.from_numpy(crops)).numpy(),
                    docs,
                    crops,
                    prepared.documents,
                    lo,
                    hi,
                    code_lengths=code_lengths,
                )
                metrics["crop_queries_fidelity@10"] = crop_metrics["fidelity@10"]
            return metrics
        assert prepared.queries is not None and prepared.pairs is not None
        rows = prepared.pairs[prepared.val]
        queries = head(torch.from_numpy(prepared.queries[rows[:, 0]])).numpy()
        return validation_metrics(
            queries,
            docs,
            prepared.queries[rows[:, 0]],
            prepared.documents,
            lo,
            hi,
            positives=rows[:, 1],
            code_lengths=code_lengths,
        )


@dataclass
class HeadFit:
    """A trained head and what was measured around it.

    Attributes:
        head: The trained head (evaluation mode).
        result: The loop result.
        before: Validation metrics of the identity head with the source bundle's ranges.
        after: Validation metrics of the trained head with its fresh ranges.
        lo: Fresh int8 minimums (the head on the calibration embeddings).
        hi: Fresh int8 maximums.
    """

    head: Head
    result: LoopResult
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    lo: np.ndarray
    hi: np.ndarray


def fit_head(
    config: TrainConfig,
    prepared: Prepared,
    calibration_embeddings: np.ndarray,
    manifest: dict[str, Any],
    plan: CalibrationOptions,
    kind: str,
) -> HeadFit:
    """Train a head on cached teacher embeddings (the core of ``--mode head``).

    Args:
        config: The run configuration (checked).
        prepared: Teacher embeddings and the train/validation split.
        calibration_embeddings: The source bundle's embeddings of the calibration corpus.
        manifest: The source bundle's manifest.
        plan: The calibration plan.
        kind: ``texts`` (distill) or ``pairs`` (mnrl).

    Returns:
        The trained head, its fresh ranges and validation metrics before and after.
    """
    dimension = int(manifest["dimension"])
    torch.manual_seed(config.seed)
    head = Head(dimension, config.head, bias=config.bias, normalize=config.normalize)
    if config.head_init == "pca":
        head.set_base(principal_axes(prepared.documents[prepared.train]))
    if config.center_init:
        mean = prepared.documents[prepared.train].mean(axis=0)
        head.set_bias(-mean)
    bundle_lo = np.asarray(manifest["calibration"]["min"], dtype=np.float32)
    bundle_hi = np.asarray(manifest["calibration"]["max"], dtype=np.float32)
    ranges = Int8Ranges(bundle_lo, bundle_hi)
    calibration_tensor = torch.from_numpy(calibration_embeddings)

    def head_ranges() -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = head(calibration_tensor).numpy()
        return compute_ranges(out, plan.method, plan.quantile)

    def refresh_ranges() -> None:
        if config.range_source() == "calibration":
            ranges.set_ranges(*head_ranges())

    refresh_ranges()
    settings = config.settings(kind)
    loss_fn = QatLoss(settings, ranges)
    lengths = sorted(
        {*COMPACT_CODE_BITS, *(code_bits(p) for p in config.precisions if code_bits(p))}
    )
    before = head_validation(head, prepared, bundle_lo, bundle_hi, lengths)

    teacher_docs = torch.from_numpy(prepared.documents)
    teacher_queries = torch.from_numpy(prepared.queries) if prepared.queries is not None else None

    teacher_crops = torch.from_numpy(prepared.crops) if prepared.crops is not None else None

    def student(batch: np.ndarray):
        index = torch.from_numpy(batch)
        if prepared.kind == "texts":
            teacher = teacher_docs[index]
            if teacher_crops is None:
                return head(teacher), teacher, None, None
            crops = teacher_crops[index]
            return head(teacher), teacher, head(crops), crops
        assert prepared.pairs is not None and teacher_queries is not None
        rows = prepared.pairs[batch]
        negatives = rows[:, 2][rows[:, 2] >= 0]
        doc_index = torch.from_numpy(np.concatenate([rows[:, 1], negatives]))
        return head(teacher_queries[torch.from_numpy(rows[:, 0])]), head(teacher_docs[doc_index])

    result = run_loop(config, prepared, head, student, loss_fn, refresh_ranges)
    final_lo, final_hi = head_ranges()
    after = head_validation(head, prepared, final_lo, final_hi, lengths)
    return HeadFit(head, result, before, after, final_lo, final_hi)


def train_head(config: TrainConfig) -> dict[str, Any]:
    """Run ``--mode head`` end to end: validate, cache, train, bake, calibrate, check.

    Returns:
        A summary for the command line (the same run summary is in the new manifest).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    manifest, plan, data = _start_run(config)
    torch.manual_seed(config.seed)

    t0 = time.perf_counter()
    prepared = prepare(data, config.bundle, manifest, config)
    calibration_embeddings = calibration_embeddings_for(plan, config.bundle, manifest, config)
    timings["embedding_s"] = round(time.perf_counter() - t0, 1)
    dimension = int(manifest["dimension"])
    if prepared.documents.shape[1] != dimension:
        raise BundleError(
            f"embeddings have {prepared.documents.shape[1]} dimensions, not {dimension}"
        )

    fit = fit_head(config, prepared, calibration_embeddings, manifest, plan, data.kind)
    head, result, before, after = fit.head, fit.result, fit.before, fit.after
    timings["training_s"] = result.seconds

    t0 = time.perf_counter()
    weight, bias = head.matrices()
    summary = _training_summary(
        config,
        manifest,
        data,
        prepared,
        result,
        before,
        after,
        timings,
        extra={
            "head": {
                "kind": config.head,
                "bias": config.bias,
                "normalize": config.normalize,
                "orthogonality_error": float(np.abs(weight @ weight.T - np.eye(dimension)).max()),
                "distance_from_identity": float(np.abs(weight - np.eye(dimension)).max()),
                "bias_norm": float(np.linalg.norm(bias)) if bias is not None else None,
            }
        },
    )

    def write_graph(staging: Path) -> None:
        bake_head(
            config.bundle / MODEL_FILE,
            staging / MODEL_FILE,
            weight,
            bias,
            normalize=config.normalize,
        )

    new_manifest = _write_new_bundle(
        config, manifest, plan, write_graph, summary, started, timings, t0
    )
    if config.save_head is not None:
        save_head(
            config.save_head,
            HeadArtifact(
                weight=weight,
                bias=bias,
                source_fingerprint=manifest["fingerprint"],
                normalize=config.normalize,
                name=new_manifest["name"],
                calibration=plan,
                code_lengths=code_lengths_field(config, dimension),
                training=new_manifest["training"],
            ),
        )
    remove_checkpoints(config)
    return _cli_summary(config, manifest, new_manifest, result, before, after)


def _start_run(config: TrainConfig) -> tuple[dict[str, Any], CalibrationOptions, TrainingData]:
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
    _check_kind(config, data)
    if config.out.resolve() == config.bundle.resolve():
        raise ConfigError("--out must differ from --bundle")
    if config.out.exists() and any(config.out.iterdir()) and not config.force and not config.resume:
        raise BundleError(f"{config.out} is not empty; pass --force to overwrite it")
    return manifest, plan, data


def _check_kind(config: TrainConfig, data: TrainingData) -> None:
    if config.loss == "mnrl" and data.kind != "pairs":
        raise ConfigError("--loss mnrl needs pairs")
    if config.loss == "distill" and data.kind != "texts":
        raise ConfigError("--loss distill needs texts")
    if data.kind == "texts" and len(data.texts) < 2:
        raise ConfigError("self-distillation needs at least 2 texts")


def _training_summary(
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


def _write_new_bundle(
    config: TrainConfig,
    manifest: dict[str, Any],
    plan: CalibrationOptions,
    write_graph: Callable[[Path], None],
    summary: dict[str, Any],
    started: float,
    timings: dict[str, float],
    export_started: float,
) -> dict[str, Any]:
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
        name=f"{manifest['name']}-qat-{config.mode}",
        training=summary,
        code_lengths=code_lengths_field(config, int(manifest["dimension"])),
        progress=config.progress,
        on_calibrated=calibrated,
    )


def remove_checkpoints(config: TrainConfig) -> None:
    """Delete this run's checkpoints once its bundle is written (and the folder if empty)."""
    folder = checkpoint_dir(config)
    if not folder.is_dir():
        return
    for path in folder.glob("step-*.pt"):
        path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def _cli_summary(
    config: TrainConfig,
    manifest: dict[str, Any],
    new: dict[str, Any],
    result: LoopResult,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
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


# --- full mode ---------------------------------------------------------------------------------


def train_full(config: TrainConfig) -> dict[str, Any]:
    """Run ``--mode full``: fine-tune the encoder behind the bundle and export a new bundle.

    The teacher is the source bundle's cached float32 embeddings; the student is the original
    sentence-transformers model (from the manifest's ``source``), trained with the same loss.
    Meant for a GPU (``cuda`` is used when available); on a CPU, use ``--max-steps`` for a
    smoke test.

    Returns:
        A summary for the command line.
    """
    from qembed_worker.export.exporter import (
        MIN_COSINE,
        SMOKE_TEXTS,
        export_onnx,
        inspect_model,
        parity,
    )
    from qembed_worker.models.sources import load_sentence_transformer, resolve_source

    timings: dict[str, float] = {}
    started = time.perf_counter()
    manifest, plan, data = _start_run(config)
    resolved = resolve_source(manifest["source"])
    torch.manual_seed(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    t0 = time.perf_counter()
    prepared = prepare(data, config.bundle, manifest, config)
    calibration_corpus = load_corpus(plan.corpus, limit=plan.limit, cache_dir=plan.cache_dir)
    timings["embedding_s"] = round(time.perf_counter() - t0, 1)

    model = load_sentence_transformer(resolved.path)
    model.max_seq_length = int(manifest["max_tokens"])
    model.to(device)
    if model.get_embedding_dimension() != manifest["dimension"]:
        raise BundleError("the source model's dimension differs from the bundle's")
    prompts = manifest["prompts"]

    def encode(texts: list[str], input_type: str) -> torch.Tensor:
        features = model.preprocess([prompts[input_type] + t for t in texts])
        features = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()
        }
        return model(features)["sentence_embedding"]

    bundle_lo = np.asarray(manifest["calibration"]["min"], dtype=np.float32)
    bundle_hi = np.asarray(manifest["calibration"]["max"], dtype=np.float32)
    ranges = Int8Ranges(bundle_lo, bundle_hi).to(device)

    def refresh_ranges() -> None:
        if config.range_source() != "calibration":
            return
        with torch.no_grad():
            was_training = model.training
            model.eval()
            chunks = [
                encode(calibration_corpus.texts[i : i + 64], plan.input_type).float().cpu()
                for i in range(0, len(calibration_corpus.texts), 64)
            ]
            model.train(was_training)
        ranges.set_ranges(*compute_ranges(torch.cat(chunks).numpy(), plan.method, plan.quantile))

    refresh_ranges()
    loss_fn = QatLoss(config.settings(data.kind), ranges)
    teacher_docs = torch.from_numpy(prepared.documents).to(device)
    teacher_crops = (
        torch.from_numpy(prepared.crops).to(device) if prepared.crops is not None else None
    )

    def student(batch: np.ndarray):
        if prepared.kind == "texts":
            texts = [prepared.doc_texts[i] for i in batch]
            index = torch.from_numpy(batch).to(device)
            if teacher_crops is None:
                return encode(texts, "document"), teacher_docs[index], None, None
            crops = [prepared.crop_texts[i] for i in batch]
            return (
                encode(texts, "document"),
                teacher_docs[index],
                encode(crops, "query"),
                (teacher_crops[index]),
            )
        assert prepared.pairs is not None
        rows = prepared.pairs[batch]
        negatives = rows[:, 2][rows[:, 2] >= 0]
        docs = [prepared.doc_texts[i] for i in np.concatenate([rows[:, 1], negatives])]
        return encode([prepared.query_texts[i] for i in rows[:, 0]], "query"), encode(
            docs, "document"
        )

    result = run_loop(config, prepared, model, student, loss_fn, refresh_ranges)
    timings["training_s"] = result.seconds
    model.to("cpu").eval()
    summary = _training_summary(config, manifest, data, prepared, result, None, None, timings)
    summary["validation"] = {
        "what": "not computed in full mode; run eval-bundle",
        "before": None,
        "after": None,
    }

    t0 = time.perf_counter()
    spec = inspect_model(model, int(manifest["max_tokens"]))
    if spec.prompts != prompts:
        spec.prompts = dict(prompts)

    def write_graph(staging: Path) -> None:
        export_onnx(model, spec, staging / MODEL_FILE, opset=18)

    new_manifest = _write_new_bundle(
        config, manifest, plan, write_graph, summary, started, timings, t0
    )
    cosines = parity(model, config.out, new_manifest, list(SMOKE_TEXTS))
    if min(cosines.values()) < MIN_COSINE:
        raise BundleError(f"the exported graph disagrees with the trained model: {cosines}")
    remove_checkpoints(config)
    return _cli_summary(config, manifest, new_manifest, result, None, None)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run a training job in the configured mode (see the module docstring)."""
    if config.mode == "full":
        return train_full(config)
    return train_head(config)
