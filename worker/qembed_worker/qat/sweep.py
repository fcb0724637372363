"""The runs behind docs/qat.md: every variant trained in memory and evaluated on cached embeddings.

Variants are trained on the same cached embeddings and evaluated with the PyTorch head on the
cached encoder embeddings and fresh ranges from the calibration corpus (what the exported
bundle does, to float32 rounding; tests check the baked graph against the PyTorch head).
Choices are made on the training collection only; the held-out collection is reported, never
used to choose.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qembed_worker.bundle.manifest import read_manifest
from qembed_worker.data.datasets import load_beir, load_training_data
from qembed_worker.eval.evaluate import evaluate_embeddings, top_k
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.qat.config import calibration_plan, check_config
from qembed_worker.qat.data import embed_training_data
from qembed_worker.qat.experiment import BASE, VARIANTS, variant_config
from qembed_worker.qat.head import Head
from qembed_worker.qat.head_mode import calibration_embeddings_for, fit_head
from qembed_worker.qat.validation import head_validation


class EvalSet:
    """A dataset's queries and corpus embedded once by the source bundle."""

    def __init__(
        self, folder: Path, bundle: Path, manifest: dict[str, Any], cache_dir: Path | None
    ) -> None:
        """Embed ``folder``'s queries and corpus with ``bundle`` (through the cache)."""
        self.dataset = load_beir(folder)
        assert self.dataset.queries is not None
        common = {"cache_dir": cache_dir, "manifest": manifest, "progress": False}
        self.queries = bundle_embeddings(bundle, self.dataset.queries.texts, "query", **common)
        self.docs = bundle_embeddings(bundle, self.dataset.corpus.texts, "document", **common)
        exact = self.queries.astype(np.float64) @ self.docs.astype(np.float64).T
        self.reference = top_k(exact, 10)

    def evaluate(self, head: Any, lo: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
        """The page's figures for ``head`` (``None``: the bundle as is) under ranges lo/hi."""
        with torch.no_grad():
            queries = head(torch.from_numpy(self.queries)).numpy() if head else self.queries
            docs = head(torch.from_numpy(self.docs)).numpy() if head else self.docs
        report = evaluate_embeddings(
            self.dataset, queries, docs, lo, hi, reference_top=self.reference, multipliers=(4,)
        )
        return digest(report)


def digest(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the page shows, from an evaluation report."""
    results = {(r["mode"], r["rescore_multiplier"]): r for r in report["results"]}
    reference = {
        (r["mode"], r["rescore_multiplier"]): r["fidelity@10"]
        for r in report["reference_fidelity"] or []
    }
    out: dict[str, Any] = {}
    for key, name in (
        (("float32", None), "float32"),
        (("int8", None), "int8"),
        (("binary", None), "binary"),
        (("binary+int8", 4), "binary+int8@4"),
    ):
        entry = results[key]
        out[name] = {
            "ndcg@10": entry["ndcg@10"],
            "retention": entry["retention"],
            "fidelity@10": entry["fidelity@10"],
            "fidelity@10_vs_original": reference.get(key),
        }
    return out


def run_sweep(
    *,
    bundle: Path,
    train_dataset: Path,
    eval_sets: dict[str, EvalSet],
    cache_dir: Path | None,
    work: Path,
    only: set[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every variant of :data:`VARIANTS` (in memory).

    ``overrides`` change every variant's options (the smoke mode's single epoch).
    """
    manifest = read_manifest(bundle)
    lo = np.asarray(manifest["calibration"]["min"], dtype=np.float32)
    hi = np.asarray(manifest["calibration"]["max"], dtype=np.float32)
    data = load_training_data(train_dataset, loss="distill")
    rows = []
    for name, description, changes in VARIANTS:
        if only is not None and name not in only:
            continue
        print(f"qembed-worker: variant {name}", flush=True)
        if changes is None:
            config = variant_config(bundle, train_dataset, work / name, cache_dir)
            prepared = embed_training_data(data, bundle, manifest, config)
            identity = Head(int(manifest["dimension"]), "rotation")
            validation = head_validation(identity, prepared, lo, hi)
            rows.append(
                {
                    "name": name,
                    "description": description,
                    "changes": None,
                    "train_s": 0.0,
                    "steps": 0,
                    "validation": validation,
                    "eval": {k: s.evaluate(None, lo, hi) for k, s in eval_sets.items()},
                }
            )
            continue
        config = variant_config(
            bundle,
            train_dataset,
            work / name,
            cache_dir,
            checkpoint_dir=work / f"{name}.checkpoints",
            checkpoint_every=10**9,
            **{**changes, **(overrides or {})},
        )
        check_config(config)
        plan = calibration_plan(config, manifest)
        prepared = embed_training_data(data, bundle, manifest, config)
        calibration = calibration_embeddings_for(plan, bundle, manifest, config)
        started = time.perf_counter()
        fit = fit_head(config, prepared, calibration, manifest, plan, data.kind)
        seconds = time.perf_counter() - started
        fit.head.eval()
        rows.append(
            {
                "name": name,
                "description": description,
                "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
                "train_s": round(seconds, 1),
                "steps": fit.result.steps,
                "validation": fit.after,
                "eval": {k: s.evaluate(fit.head, fit.lo, fit.hi) for k, s in eval_sets.items()},
            }
        )
    return rows


def run_in_domain(
    *,
    bundle: Path,
    folder: Path,
    eval_set: EvalSet,
    options: dict[str, Any],
    cache_dir: Path | None,
    work: Path,
) -> dict[str, Any]:
    """Train the chosen configuration on a collection's own corpus (label-free) and evaluate.

    A side experiment, not a target: it shows what the head does when it may see the corpus it
    serves, which is what label-free self-distillation is for. Nothing is chosen from it.
    """
    manifest = read_manifest(bundle)
    config = variant_config(
        bundle,
        folder,
        work / "in-domain",
        cache_dir,
        checkpoint_dir=work / "in-domain.checkpoints",
        checkpoint_every=10**9,
        **{k: v for k, v in options.items() if k not in BASE or BASE[k] != v},
    )
    check_config(config)
    plan = calibration_plan(config, manifest)
    data = load_training_data(folder, loss="distill")
    prepared = embed_training_data(data, bundle, manifest, config)
    calibration = calibration_embeddings_for(plan, bundle, manifest, config)
    started = time.perf_counter()
    fit = fit_head(config, prepared, calibration, manifest, plan, data.kind)
    seconds = time.perf_counter() - started
    shutil.rmtree(work / "in-domain.checkpoints", ignore_errors=True)
    return {
        "train_s": round(seconds, 1),
        "steps": fit.result.steps,
        "texts": len(prepared.train),
        "eval": eval_set.evaluate(fit.head.eval(), fit.lo, fit.hi),
    }
