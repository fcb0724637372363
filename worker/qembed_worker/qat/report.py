"""``qat-report``: PTQ against QAT, and every variant tried, written to ``docs/qat.md``.

One command regenerates the page: it trains the chosen head configuration into the QAT bundle
(exactly as ``train`` does), evaluates the source (PTQ) and QAT bundles end to end with
``eval-bundle`` (their own ONNX graphs, on every evaluation dataset), re-runs the table of
variants tried, and writes the Markdown page with its JSON beside it.

Variants are trained on the same cached embeddings and evaluated with the PyTorch head on the
cached encoder embeddings and fresh ranges from the calibration corpus (what the exported
bundle does, to float32 rounding; tests check the baked graph against the PyTorch head).
Choices are made on the training collection only; the held-out collection is reported, never
used to choose.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qembed_worker.bundle.manifest import read_manifest
from qembed_worker.data.datasets import load_beir, load_training_data
from qembed_worker.eval.evaluate import evaluate_bundle, evaluate_embeddings, top_k
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.qat.head import Head
from qembed_worker.qat.train import (
    TrainConfig,
    calibration_embeddings_for,
    calibration_plan,
    check_config,
    fit_head,
    head_validation,
    prepare,
    train_head,
)

# Options every variant starts from.
BASE: dict[str, Any] = {
    "mode": "head",
    "loss": "distill",
    "head": "rotation",
    "bias": False,
    "precisions": ("float32", "int8", "binary"),
    "weights": (1.0, 1.0, 1.0),
    "temperature": 0.05,
    "batch_size": 256,
    "epochs": 20,
    "seed": 0,
}

# What was tried, as changes to BASE (None: the source bundle, untrained).
VARIANTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("ptq", "no training: the source bundle (PTQ)", None),
    ("rotation", "rotation head (orthogonal, no bias)", {}),
    ("rotation-binary-only", "rotation, loss weights 0,0,1", {"weights": (0.0, 0.0, 1.0)}),
    ("rotation-t0.02", "rotation, temperature 0.02", {"temperature": 0.02}),
    ("rotation-t0.1", "rotation, temperature 0.1", {"temperature": 0.1}),
    ("rotation-clipped", "rotation, clipped straight-through sign", {"binary_ste": "clipped"}),
    ("rotation-asymmetric", "rotation, float32 query side", {"asymmetric": True}),
    ("rotation-scale", "rotation, learned logit scales", {"learn_scale": True}),
    ("rotation-warmup", "rotation, 100-step warm-up of int8/binary", {"warmup_steps": 100}),
    (
        "rotation-neighbors",
        "rotation, 16-nearest-neighbour batches",
        {"batch_sampler": "neighbors"},
    ),
    (
        "rotation-bundle-ranges",
        "rotation, int8 with the source's ranges",
        {"int8_ranges": "bundle"},
    ),
    (
        "rotation-quantile",
        "rotation, quantile ranges (q = 0.001)",
        {"calibration_method": "quantile", "calibration_quantile": 0.001},
    ),
    ("linear", "free linear head (not orthogonal)", {"head": "linear"}),
    ("rotation-bias", "rotation + learned bias (zero init)", {"bias": True}),
    (
        "rotation-bias-centred",
        "rotation + bias initialised to centre the corpus",
        {"bias": True, "center_init": True},
    ),
    ("rotation-crops", "rotation + query-like crops of the corpus", {"crop_queries": True}),
    (
        "rotation-bias-crops",
        "rotation + bias + query-like crops",
        {"bias": True, "crop_queries": True},
    ),
]

# The rule that picks the QAT bundle's variant from the training collection's numbers, fixed
# before the held-out collection is looked at: the highest binary fidelity on the query-like crop
# split, provided float32 agreement on the split stays >= 99% and float32 NDCG@10 on the training
# collection within 0.5 point of PTQ; ties go to the document split, then to the simpler variant.
MIN_SPLIT_FLOAT32 = 0.99
MAX_FLOAT32_NDCG_DROP = 0.005


def choose(rows: list[dict[str, Any]], train: str) -> str:
    """Apply the selection rule to the sweep's rows and return the chosen variant's name."""
    ptq = next(r for r in rows if r["changes"] is None)
    base_ndcg = ptq["eval"][train]["float32"]["ndcg@10"]
    best: tuple[float, float, int] | None = None
    chosen = ""
    for order, row in enumerate(rows):
        if row["changes"] is None or not row["validation"]:
            continue
        docs = row["validation"]["fidelity@10"]
        crops = row["validation"].get("crop_queries_fidelity@10") or {}
        if docs["float32"] < MIN_SPLIT_FLOAT32:
            continue
        if base_ndcg - row["eval"][train]["float32"]["ndcg@10"] > MAX_FLOAT32_NDCG_DROP:
            continue
        key = (crops.get("binary", 0.0), docs["binary"], -order)
        if best is None or key > best:
            best, chosen = key, row["name"]
    if not chosen:
        raise ValueError("no variant passes the selection rule")
    return chosen


MIN_FIDELITY_GAIN = 0.02


def beats_ptq(ptq: dict[str, Any], qat: dict[str, Any]) -> bool:
    """Whether QAT beats PTQ on one collection (what decides the served default)."""
    gain = qat["binary"]["fidelity@10_vs_original"] - ptq["binary"]["fidelity@10_vs_original"]
    return (
        gain >= MIN_FIDELITY_GAIN - 1e-9
        and qat["binary"]["retention"] >= ptq["binary"]["retention"] - 1e-9
        and ptq["float32"]["ndcg@10"] - qat["float32"]["ndcg@10"] <= MAX_FLOAT32_NDCG_DROP + 1e-9
    )


def options_of(variant: str) -> dict[str, Any]:
    """BASE with the variant's changes."""
    changes = {n: c for n, _, c in VARIANTS}[variant]
    return {**BASE, **(changes or {})}


def _config(
    bundle: Path, dataset: Path, out: Path, cache_dir: Path | None, **changes: Any
) -> TrainConfig:
    options = {**BASE, **changes}
    return TrainConfig(
        bundle=bundle, dataset=dataset, out=out, cache_dir=cache_dir, progress=False, **options
    )


REPORT_COMMAND = (
    "scripts/qat-report   # = PYTHONPATH=worker $(scripts/worker-env) -m qembed_worker qat-report"
)


def train_command(bundle: Path, dataset: Path, out: Path, options: dict[str, Any]) -> str:
    """The ``train`` command line that reproduces a bundle (run from the repository root)."""
    parts = [
        "PYTHONPATH=worker $(scripts/worker-env) -m qembed_worker train",
        f"--bundle {bundle}",
        f"--dataset {dataset}",
        f"--out {out}",
    ]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                parts.append(flag)
        elif isinstance(value, tuple | list):
            parts.append(
                f"{flag} {','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value)}"
            )
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


class _EvalSet:
    """A dataset's queries and corpus embedded once by the source bundle."""

    def __init__(
        self, folder: Path, bundle: Path, manifest: dict[str, Any], cache_dir: Path | None
    ) -> None:
        self.dataset = load_beir(folder)
        assert self.dataset.queries is not None
        common = {"cache_dir": cache_dir, "manifest": manifest, "progress": False}
        self.queries = bundle_embeddings(bundle, self.dataset.queries.texts, "query", **common)
        self.docs = bundle_embeddings(bundle, self.dataset.corpus.texts, "document", **common)
        exact = self.queries.astype(np.float64) @ self.docs.astype(np.float64).T
        self.reference = top_k(exact, 10)

    def evaluate(self, head: Any, lo: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
        with torch.no_grad():
            queries = head(torch.from_numpy(self.queries)).numpy() if head else self.queries
            docs = head(torch.from_numpy(self.docs)).numpy() if head else self.docs
        report = evaluate_embeddings(
            self.dataset, queries, docs, lo, hi, reference_top=self.reference, multipliers=(4,)
        )
        return _digest(report)


def _digest(report: dict[str, Any]) -> dict[str, Any]:
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
    eval_sets: dict[str, _EvalSet],
    cache_dir: Path | None,
    work: Path,
    only: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every variant of :data:`VARIANTS` (in memory)."""
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
            config = _config(bundle, train_dataset, work / name, cache_dir)
            prepared = prepare(data, bundle, manifest, config)
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
        config = _config(
            bundle,
            train_dataset,
            work / name,
            cache_dir,
            checkpoint_dir=work / f"{name}.checkpoints",
            checkpoint_every=10**9,
            **changes,
        )
        check_config(config)
        plan = calibration_plan(config, manifest)
        prepared = prepare(data, bundle, manifest, config)
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
    eval_set: _EvalSet,
    options: dict[str, Any],
    cache_dir: Path | None,
    work: Path,
) -> dict[str, Any]:
    """Train the chosen configuration on a collection's own corpus (label-free) and evaluate.

    A side experiment, not a target: it shows what the head does when it may see the corpus it
    serves, which is what label-free self-distillation is for. Nothing is chosen from it.
    """
    manifest = read_manifest(bundle)
    config = _config(
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
    prepared = prepare(data, bundle, manifest, config)
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


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _points(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return "-"
    return f"{100 * (new - old):+.1f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


INTRO = """# Quantization-aware training (QAT)

Does training the model with its quantized embeddings in the loss make the binary first stage
and the int8 rescoring rank more like float32? This page compares post-training quantization
(PTQ: the default bundle, quantized as is) with QAT in **head mode**: the encoder stays frozen,
a d x d head is trained on cached embeddings by label-free self-distillation on the corpus of
`{train}` only, and baked into the ONNX graph. `{held_out}` was never seen in training and never
used to choose anything.

Regenerate this page (and `models/qat-head`) with one command, from the repository root:

```sh
{command}
```

Generated {generated} on {machine}. JSON: `docs/qat/`.

**Full mode** (fine-tuning the whole encoder, `train --mode full`) is meant for a GPU; this
machine has none. A bounded CPU run (400 steps, 23 minutes on 2 cores, at the compact code
lengths) lowered float32 NDCG@10 and did not beat the head: see docs/compact-codes.md.

**Compact codes, per length**: PTQ's first dimensions against a PCA rotation and QAT heads at
384, 256, 128 and 64 bits, on a collection their training never saw (msmarco-5k), are in
docs/compact-codes.md, with the chart of retention against bytes per document in docs/quality.md.
"""

PTQ_QAT_INTRO = """## PTQ against QAT

End to end: each bundle's own ONNX graph embeds every query and document, quantized with its own
calibration ranges and scored as the service scores (`eval-bundle`, which agrees with
`npm run eval` to the last digit on the default bundle). *Fidelity vs original* is the share of
the **original model's** float32 top-10 found in the mode's top-10, over all queries (judged or
not); *retention* is NDCG@10 relative to the same bundle's float32. binary+int8 uses multiplier
4.
"""

SWEEP_INTRO = """## What was tried

Every variant is trained by the same code on the same cached `{train}` corpus embeddings (seed
0, 20 epochs of 256-text batches, Adam 1e-3) and evaluated with its PyTorch head on the cached
encoder embeddings and fresh calibration ranges (the baked ONNX graph equals the PyTorch head to
1e-6, tested). The *split* columns are label-free: 500 `{train}` documents were kept out of
training; *docs* uses each as a query against the whole corpus, *crops* uses a 4-12-word random
crop of each (query-like, query prompt); both give binary fidelity@10 against the original
float32 top-10, and *float32* the float32 agreement on docs. The configuration was chosen on
the `{train}` columns only, by this rule fixed beforehand: highest binary fidelity on the crop
split (500 query-like queries; the 50 real queries move by 2 points between equivalent random
rotations), provided float32 agreement on the split stays at or above 99% and float32 NDCG@10 on
`{train}` within 0.5 point. The `{held_out}` columns were computed afterwards, for the record.
"""


def render(summary: dict[str, Any]) -> str:
    """The Markdown page."""
    train = summary["train_dataset_name"]
    held_out = [n for n in summary["eval"] if n != train]
    names = "`, `".join(held_out)
    qat = summary["qat_bundle"]
    lines = [
        INTRO.format(
            train=train,
            held_out=names,
            command=summary["command"],
            generated=summary["generated"],
            machine=summary["machine"],
        ),
        "## The QAT bundle",
        "",
        "```sh",
        summary["train_command"],
        "```",
        "",
        f"- fingerprint `{qat['fingerprint']}` (from `{summary['ptq_bundle']['fingerprint']}`);",
        f"- {qat['steps']} steps: **training took {qat['training_s'] / 60:.1f} min** on this CPU; "
        f"the whole command {qat['total_s'] / 60:.1f} min, of which embedding the training "
        f"texts {qat['embedding_s'] / 60:.1f} min (read from the embedding cache when the "
        f"corpus was embedded before) and calibrating the new graph "
        f"{qat['calibration_s'] / 60:.1f} min;",
        f"- head: {qat['head']};",
        f"- fresh calibration ranges: {qat['calibration']}.",
        "",
        PTQ_QAT_INTRO,
        _row(
            [
                "collection",
                "bundle",
                "NDCG@10 float32",
                "int8",
                "binary",
                "binary+int8",
                "binary retention",
                "binary+int8 retention",
                "binary fidelity vs original",
                "float32 fidelity vs original",
            ]
        ),
        _row(["---"] * 10),
    ]
    for name, both in summary["eval"].items():
        for label in ("ptq", "qat"):
            d = both[label]
            lines.append(
                _row(
                    [
                        name,
                        label.upper(),
                        f"{d['float32']['ndcg@10']:.4f}",
                        f"{d['int8']['ndcg@10']:.4f}",
                        f"{d['binary']['ndcg@10']:.4f}",
                        f"{d['binary+int8@4']['ndcg@10']:.4f}",
                        f"{_pct(d['binary']['retention'])}%",
                        f"{_pct(d['binary+int8@4']['retention'])}%",
                        f"{_pct(d['binary']['fidelity@10_vs_original'])}%",
                        f"{_pct(d['float32']['fidelity@10_vs_original'])}%",
                    ]
                )
            )
    lines += ["", "## Targets (issue 5, on the held-out collection)", ""]
    lines += [_row(["target", "PTQ", "QAT", "change (points)", "met"]), _row(["---"] * 5)]
    for name in held_out:
        ptq, new = summary["eval"][name]["ptq"], summary["eval"][name]["qat"]
        fid = (ptq["binary"]["fidelity@10_vs_original"], new["binary"]["fidelity@10_vs_original"])
        ret = (ptq["binary"]["retention"], new["binary"]["retention"])
        f32 = (ptq["float32"]["ndcg@10"], new["float32"]["ndcg@10"])
        checks = [
            ("binary fidelity@10 vs original: +5 points", fid, fid[1] - fid[0] >= 0.05 - 1e-12),
            ("binary NDCG@10 retention: +2 points", ret, ret[1] - ret[0] >= 0.02 - 1e-12),
        ]
        for label, (old, new_value), ok in checks:
            lines.append(
                _row(
                    [
                        f"{name}: {label}",
                        f"{_pct(old)}%",
                        f"{_pct(new_value)}%",
                        _points(new_value, old),
                        "yes" if ok else "no",
                    ]
                )
            )
        lines.append(
            _row(
                [
                    f"{name}: float32 NDCG@10 drops at most 0.5 point",
                    f"{f32[0]:.4f}",
                    f"{f32[1]:.4f}",
                    _points(f32[1], f32[0]),
                    "yes" if f32[0] - f32[1] <= 0.005 + 1e-12 else "no",
                ]
            )
        )
    lines += ["", summary["verdict"], ""]
    lines += _sweep_section(summary, train, held_out)
    lines += _in_domain_section(summary)
    lines += ["", "## Notes", ""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


IN_DOMAIN_INTRO = """
## Side experiment: the head trained on the served corpus (not a target)

Label-free self-distillation needs no judgments, so a user can train the head on the corpus
they serve. This runs the chosen configuration, unchanged, on each held-out collection's own
corpus (80% of its documents; no queries, no judgments) and evaluates it like the rows above.
It does not count toward the targets, which ask for a collection the training never saw, and
nothing was chosen from it.
"""


def _in_domain_section(summary: dict[str, Any]) -> list[str]:
    if not summary.get("in_domain"):
        return []
    lines = [IN_DOMAIN_INTRO]
    header = [
        "collection",
        "training texts",
        "train s",
        "float32 NDCG@10",
        "binary NDCG@10",
        "binary retention",
        "binary fidelity vs original",
        "PTQ binary fidelity vs original",
    ]
    lines += [_row(header), _row(["---"] * len(header))]
    for name, result in summary["in_domain"].items():
        e = result["eval"]
        ptq = summary["eval"][name]["ptq"]
        lines.append(
            _row(
                [
                    name,
                    str(result["texts"]),
                    f"{result['train_s']:.0f}",
                    f"{e['float32']['ndcg@10']:.4f}",
                    f"{e['binary']['ndcg@10']:.4f}",
                    f"{_pct(e['binary']['retention'])}%",
                    f"{_pct(e['binary']['fidelity@10_vs_original'])}%",
                    f"{_pct(ptq['binary']['fidelity@10_vs_original'])}%",
                ]
            )
        )
    return lines


def _sweep_section(summary: dict[str, Any], train: str, held_out: list[str]) -> list[str]:
    lines = [SWEEP_INTRO.format(train=train, held_out="`, `".join(held_out))]
    header = [
        "variant",
        "train s",
        "split: binary fid, docs",
        "split: binary fid, crops",
        "split: float32 fid",
        f"{train}: float32 NDCG@10",
        f"{train}: binary fid vs orig",
        f"{train}: binary ret",
    ]
    for name in held_out:
        header += [
            f"{name}: float32 NDCG@10",
            f"{name}: binary fid vs orig",
            f"{name}: binary ret",
        ]
    lines += [_row(header), _row(["---"] * len(header))]
    for row in summary["sweep"]:
        val = row["validation"] or {}
        docs = val.get("fidelity@10", {})
        crops = val.get("crop_queries_fidelity@10", {})
        e = row["eval"][train]
        marker = " **(chosen)**" if row["name"] == summary["chosen"] else ""
        cells = [
            f"{row['description']}{marker}",
            f"{row['train_s']:.0f}",
            _pct(docs.get("binary")),
            _pct(crops.get("binary")),
            _pct(docs.get("float32")),
            f"{e['float32']['ndcg@10']:.4f}",
            _pct(e["binary"]["fidelity@10_vs_original"]),
            _pct(e["binary"]["retention"]),
        ]
        for name in held_out:
            h = row["eval"][name]
            cells += [
                f"{h['float32']['ndcg@10']:.4f}",
                _pct(h["binary"]["fidelity@10_vs_original"]),
                _pct(h["binary"]["retention"]),
            ]
        lines.append(_row(cells))
    return lines


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
) -> dict[str, Any]:
    """Train the QAT bundle, evaluate PTQ and QAT, run the variants and write the page.

    Args:
        bundle: The source (PTQ) bundle.
        train_dataset: BEIR folder whose corpus trains the head.
        eval_datasets: BEIR folders to evaluate on (the training one and held-out ones).
        qat_bundle: Where the QAT bundle is written.
        out: The Markdown page; its JSON goes to ``<out without .md>/``.
        cache_dir: Embedding cache.
        reuse_bundle: Keep an existing QAT bundle instead of training it again.
        sweep: Re-run the variants (otherwise the previous ``sweep.json`` is reused).
        variants: Run only these variants (all when ``None``).

    Returns:
        A short summary.
    """
    json_dir = out.with_suffix("")
    json_dir.mkdir(parents=True, exist_ok=True)
    work = json_dir / ".work"
    ptq_manifest = read_manifest(bundle)
    train_name = load_beir(train_dataset, queries=False).name
    sweep_path = json_dir / "sweep.json"
    if sweep or not sweep_path.is_file():
        eval_sets = {
            load_beir(f, queries=False).name: _EvalSet(f, bundle, ptq_manifest, cache_dir)
            for f in eval_datasets
        }
        rows = run_sweep(
            bundle=bundle,
            train_dataset=train_dataset,
            eval_sets=eval_sets,
            cache_dir=cache_dir,
            work=work,
            only=variants,
        )
        sweep_path.write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
        shutil.rmtree(work, ignore_errors=True)
    rows = json.loads(sweep_path.read_text("utf-8"))
    chosen = choose(rows, train_name)
    options = options_of(chosen)
    config = _config(bundle, train_dataset, qat_bundle, cache_dir, force=True, **options)
    if not (reuse_bundle and (qat_bundle / "manifest.json").is_file()):
        train_head(replace(config, progress=True))
    qat_manifest = read_manifest(qat_bundle)
    training = qat_manifest["training"]
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
            both[label] = _digest(report)
        evaluations[name] = both
    held_out = [n for n in evaluations if n != train_name]
    in_domain = {}
    for folder in eval_datasets:
        name = load_beir(folder, queries=False).name
        if name in held_out:
            in_domain[name] = run_in_domain(
                bundle=bundle,
                folder=folder,
                eval_set=_EvalSet(folder, bundle, ptq_manifest, cache_dir),
                options=options,
                cache_dir=cache_dir,
                work=work,
            )
    shutil.rmtree(work, ignore_errors=True)
    met = []
    for name in held_out:
        ptq, qat = evaluations[name]["ptq"], evaluations[name]["qat"]
        met.append(
            qat["binary"]["fidelity@10_vs_original"] - ptq["binary"]["fidelity@10_vs_original"]
            >= 0.05 - 1e-12
            and qat["binary"]["retention"] - ptq["binary"]["retention"] >= 0.02 - 1e-12
            and ptq["float32"]["ndcg@10"] - qat["float32"]["ndcg@10"] <= 0.005 + 1e-12
        )
    beats = all(beats_ptq(evaluations[n]["ptq"], evaluations[n]["qat"]) for n in held_out)
    verdict = (
        "**All targets met.**"
        if all(met)
        else "**Targets not all met** (see the table above and what was tried below)."
    )
    verdict += (
        f" On the held-out collection QAT **{'beats' if beats else 'does not beat'} PTQ** by the "
        f"rule the README's default follows: binary fidelity to the original float32 top-10 up "
        f"by at least {100 * MIN_FIDELITY_GAIN:.0f} points (the spread between equivalent random "
        "rotations), binary NDCG@10 retention not lower, float32 NDCG@10 within 0.5 point."
    )
    durations = training["durations_s"]
    head = training.get("head", {})
    summary = {
        "generated": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads (shared)",
        "command": REPORT_COMMAND,
        "train_command": train_command(bundle, train_dataset, qat_bundle, options),
        "chosen": chosen,
        "train_dataset_name": train_name,
        "ptq_bundle": {"path": str(bundle), "fingerprint": ptq_manifest["fingerprint"]},
        "qat_bundle": {
            "path": str(qat_bundle),
            "fingerprint": qat_manifest["fingerprint"],
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
                f"{qat_manifest['calibration']['method']} on "
                f"{qat_manifest['calibration']['corpus']['name']}, "
                f"{qat_manifest['calibration']['corpus']['texts']} texts"
            ),
            "validation": training.get("validation"),
        },
        "eval": evaluations,
        "targets_met": all(met),
        "beats_ptq_on_held_out": beats,
        "verdict": verdict,
        "sweep": rows,
        "in_domain": in_domain,
        "notes": NOTES,
    }
    (json_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    out.write_text(render(summary), "utf-8")
    return {
        "page": str(out),
        "qat_bundle": str(qat_bundle),
        "fingerprint": qat_manifest["fingerprint"],
        "targets_met": all(met),
        "beats_ptq_on_held_out": beats,
    }


NOTES: list[str] = [
    "**Noise.** business-reports has 11 judged queries (the shared README says 12; this copy has "
    "no judgment naming a missing document either), judged at report level (every chunk of a "
    "report), and this small model scores NDCG@10 about 0.08 there: one query moves retention by "
    "whole points, and PTQ's binary retention above 100% is noise. Fidelity over all 50 queries "
    "is steadier, but equivalent random rotations of the same embeddings still move binary "
    "fidelity by about ±2 points on 50 queries; the 500-query crop split is steadier still.",
    "**Rotation keeps float32.** An orthogonal head without bias leaves every float32 cosine "
    "unchanged (float32 fidelity 100%, NDCG@10 identical up to rounding); a bias or a free linear "
    "head changes the float32 ranking too, which the float32 columns show.",
    "**int8** gains come mostly from fresh calibration ranges: the head is calibrated on the same "
    "Lee corpus as the source bundle, and int8 was already within 0.2 point of float32.",
    "**Disclosure.** Before any training, a feasibility probe (ITQ, centring and random rotations "
    "applied to cached embeddings) was looked at on both collections; it showed, among other "
    "things, that centring by the msmarco-5k mean does not carry over to business-reports, whose "
    "documents sit in a narrow cone far from that mean. No option was picked from it: the "
    "selection rule above reads the msmarco-5k columns only.",
    "**What a linear head cannot do.** Doc-to-doc binary fidelity on the msmarco-5k split stays "
    "near 70% for every rotation tried (ITQ, random, PCA: 69-70%; trained: about 71%): with 384 "
    "sign bits and a frozen encoder the gains are a few points. Larger gains need the encoder "
    "itself to learn sign-friendly features (`train --mode full`, on a GPU; not measured here), "
    "or a head trained on the served corpus itself, which label-free self-distillation allows "
    "(`train --loss distill --dataset <your corpus>`; see the side experiment, which does not "
    "count toward the targets).",
    "**Timings** are wall-clock on a 2-core CPU shared with other jobs: the same 340 steps took "
    "8 s on a quiet machine and up to 6 min under load (the *train s* column), so read them as "
    "orders of magnitude. Training is deterministic: running the `train` command above twice "
    "writes the same fingerprint.",
]
