"""docs/encoder-quantization.md: quality, speed and size of the float32 and int8 encoders.

One command regenerates the report (``python -m qembed_worker encoder-report --help``):

- quality: :func:`qembed_worker.evaluate.evaluate_bundle` on each dataset, NDCG@10 for float32
  embeddings and for binary+int8 search (rescoring multiplier :data:`MULTIPLIER`);
- speed: the service's own encoder in-process, from ``npm run bench:encode`` (``--skip-torch``),
  each bundle once per round, rounds interleaved so that the machine's load hits every bundle
  alike; ratios to the float32 bundle are taken within a round;
- size: ``model.onnx`` bytes; training minutes from the manifest.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle import MODEL_FILE, read_manifest

MULTIPLIER = 4
REPO = Path(__file__).resolve().parents[2]
_LINE = re.compile(r"^\s*\((a)\) in-process, calls of (\d+)\s+([\d.]+) texts/s\s*$")


def bench_encode(bundle: Path, texts: int) -> dict[str, float]:
    """Run ``npm run bench:encode`` on a bundle and read the in-process texts/second.

    Returns:
        ``{"1": texts/s, "8": ..., "32": ...}`` for calls of 1, 8 and 32 texts.

    Raises:
        RuntimeError: The benchmark failed or printed no in-process figures.
    """
    command = [
        "npm",
        "run",
        "--silent",
        "bench:encode",
        "--",
        "--bundle",
        str(bundle.resolve()),
        "--skip-torch",
        "--texts",
        str(texts),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench:encode failed for {bundle}:\n{done.stdout}\n{done.stderr}")
    result = {}
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match:
            result[match.group(2)] = float(match.group(3))
    if not result:
        raise RuntimeError(f"bench:encode printed no in-process figures:\n{done.stdout}")
    return result


def measure_speed(
    bundles: Sequence[tuple[str, Path]], *, rounds: int, texts: int
) -> dict[str, Any]:
    """Texts/second of every bundle, ``rounds`` interleaved rounds, and ratios to the first.

    Returns:
        ``{"rounds": [{label: {calls: texts/s}}], "summary": {label: {calls: {...}}}}`` where the
        summary holds the median texts/s and the median, min and max of the per-round ratio.
    """
    runs: list[dict[str, dict[str, float]]] = []
    for round_index in range(rounds):
        current = {}
        for label, folder in bundles:
            print(
                f"qembed-worker: bench:encode round {round_index + 1}/{rounds}: {label}",
                file=sys.stderr,
                flush=True,
            )
            current[label] = bench_encode(folder, texts)
        runs.append(current)
    base = bundles[0][0]
    summary: dict[str, Any] = {}
    for label, _ in bundles:
        summary[label] = {}
        for calls in runs[0][label]:
            values = [run[label][calls] for run in runs]
            ratios = [run[label][calls] / run[base][calls] for run in runs]
            summary[label][calls] = {
                "texts_per_s": round(statistics.median(values), 1),
                "ratio": round(statistics.median(ratios), 2),
                "ratio_min": round(min(ratios), 2),
                "ratio_max": round(max(ratios), 2),
            }
    return {"texts": texts, "rounds": runs, "summary": summary}


def _ndcg(report: dict[str, Any], mode: str, multiplier: int | None) -> float:
    for row in report["results"]:
        if row["mode"] == mode and row["rescore_multiplier"] == multiplier:
            return float(row["ndcg@10"])
    raise KeyError(f"no {mode} (m={multiplier}) row in the evaluation")


def _fidelity(report: dict[str, Any], mode: str, multiplier: int | None) -> float | None:
    for row in report.get("reference_fidelity") or []:
        if row["mode"] == mode and row["rescore_multiplier"] == multiplier:
            return float(row["fidelity@10"])
    return None


def measure_quality(
    bundles: Sequence[tuple[str, Path]], datasets: Sequence[Path]
) -> dict[str, dict[str, dict[str, Any]]]:
    """NDCG@10 (float32 embeddings; binary+int8 at m=4) of every bundle on every dataset.

    Against the first bundle (the float32 encoder) it also measures how much of its float32
    top-10 each encoder finds (fidelity@10, all queries) and the mean cosine between the two
    encoders' document embeddings: both see differences that 12-43 judged queries cannot.
    """
    from qembed_worker.datasets import load_beir
    from qembed_worker.evaluate import embed_dataset, evaluate_bundle

    base = bundles[0][1]
    quality: dict[str, dict[str, dict[str, Any]]] = {}
    for label, folder in bundles:
        quality[label] = {}
        for dataset in datasets:
            report = evaluate_bundle(bundle=folder, dataset_dir=dataset, reference_bundle=base)
            data = load_beir(dataset)
            _, documents = embed_dataset(folder, data)
            _, base_documents = embed_dataset(base, data)
            cosine = (documents.astype(np.float64) * base_documents).sum(axis=1)
            quality[label][dataset.name] = {
                "float32": _ndcg(report, "float32", None),
                f"binary+int8@{MULTIPLIER}": _ndcg(report, "binary+int8", MULTIPLIER),
                "fidelity@10_vs_float32_encoder": _fidelity(report, "float32", None),
                "document_cosine_to_float32_encoder": {
                    "mean": round(float(cosine.mean()), 6),
                    "min": round(float(cosine.min()), 6),
                },
                "judged_queries": report["dataset"]["judged_queries"],
            }
    return quality


def describe(folder: Path) -> dict[str, Any]:
    """What the table shows about a bundle besides quality and speed."""
    manifest = read_manifest(folder)
    weights = manifest.get("weights") or {}
    training = manifest.get("training") or {}
    minutes = None
    if training.get("kind") == "weight-qat":
        minutes = round(training.get("minutes", 0) + training.get("teacher_minutes", 0), 1)
    return {
        "path": str(folder),
        "fingerprint": manifest["fingerprint"],
        "weights": weights,
        "model_onnx_bytes": (folder / MODEL_FILE).stat().st_size,
        "training_minutes": minutes,
        "training": training or None,
    }


def _points(value: float, base: float) -> str:
    return f"{100 * (value - base):+.2f}"


def render(report: dict[str, Any]) -> str:
    """The Markdown tables of a report (the prose around them lives in the template)."""
    labels = list(report["bundles"])
    base = labels[0]
    datasets = list(report["quality"][base])
    speed = report["speed"]["summary"]
    lines = []
    header = "| encoder | weights |"
    rule = "| --- | --- |"
    for name in datasets:
        header += (
            f" {name} NDCG@10 float32 (pts) | {name} binary+int8 m={MULTIPLIER} (pts) |"
            f" {name} fidelity@10 / mean cos vs float32 encoder |"
        )
        rule += " --- | --- | --- |"
    calls = list(speed[base])
    for c in calls:
        header += f" texts/s, calls of {c} (ratio to float32, min-max) |"
        rule += " --- |"
    header += " model.onnx | training |"
    rule += " --- | --- |"
    lines += [header, rule]
    key = f"binary+int8@{MULTIPLIER}"
    for label in labels:
        info = report["bundles"][label]
        weights = info["weights"]
        kind = weights.get("precision", "?")
        if kind == "int8":
            kind += f" {weights.get('method')}" + (" QAT" if weights.get("qat") else " PTQ")
        cells = [label, kind]
        for name in datasets:
            q = report["quality"][label][name]
            b = report["quality"][base][name]
            cells.append(f"{q['float32']:.4f} ({_points(q['float32'], b['float32'])})")
            cells.append(f"{q[key]:.4f} ({_points(q[key], b[key])})")
            fidelity = q["fidelity@10_vs_float32_encoder"]
            cosine = q["document_cosine_to_float32_encoder"]["mean"]
            cells.append(f"{'-' if fidelity is None else f'{fidelity:.3f}'} / {cosine:.5f}")
        for c in calls:
            s = speed[label][c]
            spread = f"{s['ratio_min']:.2f}-{s['ratio_max']:.2f}"
            cells.append(f"{s['texts_per_s']:.1f} ({s['ratio']:.2f}x, {spread})")
        cells.append(f"{info['model_onnx_bytes'] / 1e6:.1f} MB")
        minutes = info["training_minutes"]
        cells.append("-" if minutes is None else f"{minutes} min")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TEMPLATE_MARKER = "<!-- encoder-report:table -->"


def write_report(
    *,
    bundles: Sequence[tuple[str, Path]],
    datasets: Sequence[Path],
    out: Path,
    rounds: int = 3,
    texts: int = 300,
    timings_from: Path | None = None,
) -> dict[str, Any]:
    """Measure the bundles and write the Markdown report and its JSON.

    The Markdown file keeps everything outside the generated table: the table replaces the
    block between two ``<!-- encoder-report:table -->`` markers (added at the end if absent).

    Args:
        bundles: ``(label, folder)``; the first is the float32 baseline.
        datasets: BEIR folders.
        out: The Markdown file; the JSON goes to the same path with ``.json``.
        rounds: bench:encode rounds.
        texts: bench:encode ``--texts``.
        timings_from: Reuse the ``speed`` section of this JSON report.

    Returns:
        A summary of what was written.
    """
    started = time.perf_counter()
    quality = measure_quality(bundles, datasets)
    if timings_from is not None:
        speed = json.loads(timings_from.read_text(encoding="utf-8"))["speed"]
    else:
        speed = measure_speed(bundles, rounds=rounds, texts=texts)
    report = {
        "bundles": {label: describe(folder) for label, folder in bundles},
        "datasets": [str(d) for d in datasets],
        "quality": quality,
        "speed": speed,
        "multiplier": MULTIPLIER,
    }
    table = render(report)
    block = f"{TEMPLATE_MARKER}\n{table}\n{TEMPLATE_MARKER}"
    text = out.read_text(encoding="utf-8") if out.is_file() else ""
    parts = text.split(TEMPLATE_MARKER)
    if len(parts) == 3:
        text = parts[0] + block + parts[2]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return {
        "out": str(out),
        "json": str(json_path),
        "table": table,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
