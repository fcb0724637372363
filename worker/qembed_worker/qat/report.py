"""``qat-report``: PTQ against QAT and every variant tried, as the tables of ``docs/qat.md``.

One command regenerates the figures: it re-runs the variants (:mod:`qembed_worker.qat.sweep`),
picks one by the rule fixed beforehand (:mod:`qembed_worker.qat.experiment`), trains it into the
QAT bundle exactly as ``train`` does, evaluates the source (PTQ) and QAT bundles end to end with
``eval-bundle`` (their own ONNX graphs, on every evaluation dataset), writes the JSON beside the
page and replaces the page's generated tables (:mod:`qembed_worker.qat.report_tables`). The
prose of the page is written by hand around them.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from qembed_worker.bundle.manifest import read_manifest
from qembed_worker.data.datasets import load_beir
from qembed_worker.eval.evaluate import evaluate_bundle
from qembed_worker.markdown import write_blocks
from qembed_worker.qat.experiment import (
    beats_ptq,
    choose,
    options_of,
    targets_met,
    train_command,
    variant_config,
)
from qembed_worker.qat.head_mode import train_head
from qembed_worker.qat.report_tables import TOOL, blocks
from qembed_worker.qat.sweep import EvalSet, digest, run_in_domain, run_sweep

# The smoke mode: two variants, one epoch each, so that a tiny bundle and dataset check the
# whole command in seconds.
SMOKE_VARIANTS = frozenset({"ptq", "rotation"})
SMOKE_OPTIONS: dict[str, Any] = {"epochs": 1}


def qat_report(
    *,
    bundle: Path,
    train_dataset: Path,
    eval_datasets: list[Path],
    qat_bundle: Path,
    out: Path,
    cache_dir: Path | None = None,
    reuse_bundle: bool = False,
    sweep: bool = True,
    variants: set[str] | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """Train the QAT bundle, evaluate PTQ and QAT, run the variants and write the tables.

    Args:
        bundle: The source (PTQ) bundle.
        train_dataset: BEIR folder whose corpus trains the head.
        eval_datasets: BEIR folders to evaluate on (the training one and held-out ones).
        qat_bundle: Where the QAT bundle is written.
        out: The Markdown page (its generated blocks are replaced, the rest kept); its JSON
            goes to ``<out without .md>/``.
        cache_dir: Embedding cache.
        reuse_bundle: Keep an existing QAT bundle instead of training it again.
        sweep: Re-run the variants (otherwise the previous ``sweep.json`` is reused).
        variants: Run only these variants (all when ``None``).
        smoke: Check the command, not the model: only the variants of :data:`SMOKE_VARIANTS`
            (unless ``variants`` names others) and one epoch for every training.

    Returns:
        A short summary.
    """
    overrides = SMOKE_OPTIONS if smoke else {}
    if smoke and variants is None:
        variants = set(SMOKE_VARIANTS)
    json_dir = out.with_suffix("")
    json_dir.mkdir(parents=True, exist_ok=True)
    work = json_dir / ".work"
    ptq_manifest = read_manifest(bundle)
    train_name = load_beir(train_dataset, queries=False).name
    sweep_path = json_dir / "sweep.json"
    if sweep or not sweep_path.is_file():
        eval_sets = {
            load_beir(f, queries=False).name: EvalSet(f, bundle, ptq_manifest, cache_dir)
            for f in eval_datasets
        }
        rows = run_sweep(
            bundle=bundle,
            train_dataset=train_dataset,
            eval_sets=eval_sets,
            cache_dir=cache_dir,
            work=work,
            only=variants,
            overrides=overrides,
        )
        sweep_path.write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
        shutil.rmtree(work, ignore_errors=True)
    rows = json.loads(sweep_path.read_text("utf-8"))
    chosen = choose(rows, train_name)
    options = {**options_of(chosen), **overrides}
    config = variant_config(bundle, train_dataset, qat_bundle, cache_dir, force=True, **options)
    if not (reuse_bundle and (qat_bundle / "manifest.json").is_file()):
        train_head(replace(config, progress=True))
    qat_manifest = read_manifest(qat_bundle)
    evaluations: dict[str, Any] = {}
    for folder in eval_datasets:
        name = load_beir(folder, queries=False).name
        both = {}
        for label, path in (("ptq", bundle), ("qat", qat_bundle)):
            report = evaluate_bundle(
                bundle=path, dataset_dir=folder, reference_bundle=bundle, cache_dir=cache_dir
            )
            (json_dir / f"{label}-{name}.json").write_text(
                json.dumps(report, indent=2) + "\n", "utf-8"
            )
            both[label] = digest(report)
        evaluations[name] = both
    held_out = [n for n in evaluations if n != train_name]
    in_domain = {}
    for folder in eval_datasets:
        name = load_beir(folder, queries=False).name
        if name in held_out:
            in_domain[name] = run_in_domain(
                bundle=bundle,
                folder=folder,
                eval_set=EvalSet(folder, bundle, ptq_manifest, cache_dir),
                options=options,
                cache_dir=cache_dir,
                work=work,
            )
    shutil.rmtree(work, ignore_errors=True)
    met = all(targets_met(evaluations[n]["ptq"], evaluations[n]["qat"]) for n in held_out)
    beats = all(beats_ptq(evaluations[n]["ptq"], evaluations[n]["qat"]) for n in held_out)
    summary = {
        "generated": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads (shared)",
        "train_command": train_command(bundle, train_dataset, qat_bundle, options),
        "chosen": chosen,
        "train_dataset_name": train_name,
        "ptq_bundle": {"path": str(bundle), "fingerprint": ptq_manifest["fingerprint"]},
        "qat_bundle": _qat_bundle_facts(qat_bundle, qat_manifest),
        "eval": evaluations,
        "targets_met": met,
        "beats_ptq_on_held_out": beats,
        "sweep": rows,
        "in_domain": in_domain,
    }
    (json_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    write_blocks(out, TOOL, blocks(summary))
    return {
        "page": str(out),
        "qat_bundle": str(qat_bundle),
        "fingerprint": qat_manifest["fingerprint"],
        "targets_met": met,
        "beats_ptq_on_held_out": beats,
    }


def _qat_bundle_facts(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of the QAT bundle, from its manifest."""
    training = manifest["training"]
    durations = training["durations_s"]
    head = training.get("head", {})
    calibration = manifest["calibration"]
    return {
        "path": str(folder),
        "fingerprint": manifest["fingerprint"],
        "steps": training["steps"],
        "training_s": durations.get("training_s", 0.0),
        "embedding_s": durations.get("embedding_s", 0.0),
        "calibration_s": durations.get("calibration_s", 0.0),
        "total_s": durations.get("total_s", 0.0),
        "head": (
            f"{head.get('kind')}{' + bias' if head.get('bias') else ''}, "
            f"max |W - I| = {head.get('distance_from_identity', 0):.3f}"
            + (f", |b| = {head['bias_norm']:.3f}" if head.get("bias_norm") else "")
        ),
        "calibration": (
            f"{calibration['method']} on {calibration['corpus']['name']}, "
            f"{calibration['corpus']['texts']} texts"
        ),
        "validation": training.get("validation"),
    }
