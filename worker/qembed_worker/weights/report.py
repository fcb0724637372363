"""docs/encoder-quantization.md: quality, speed and size of the float32 and int8 encoders.

One command regenerates the report (``python -m qembed_worker encoder-report --help``):

- quality: :func:`qembed_worker.eval.evaluate.evaluate_bundle` on each dataset, NDCG@10 for float32
  embeddings and for binary+int8 search (rescoring multiplier :data:`MULTIPLIER`);
- speed, two ways: (1) the service's own encoder in-process (tokenizer, batching queue,
  onnxruntime-node; stage (a) of ``npm run bench:encode``), measured by
  ``bench/encode-compare.ts`` (``scripts/encoder-report`` runs it and passes its JSON here),
  every bundle once per round in a rotated order, ratios to the float32 bundle taken within
  the round; (2) onnxruntime in Python on one thread, timed in CPU seconds of that thread,
  which a shared machine's load disturbs far less than wall-clock time;
- size: ``model.onnx`` bytes; training minutes from the manifest.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.manifest import MODEL_FILE, read_manifest
from qembed_worker.markdown import write_blocks

MULTIPLIER = 4


def bench_passages(corpus: Path, count: int) -> list[str]:
    """The first ``count`` passages (``text`` only) of a BEIR ``corpus.jsonl``.

    Given msmarco-5k's corpus, these are the passages ``bench:encode`` times.
    """
    lines = [line for line in corpus.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [json.loads(line)["text"] for line in lines[:count]]


def service_speed(raw: dict[str, Any], bundles: Sequence[tuple[str, Path]]) -> dict[str, Any]:
    """Texts/second in the service's encoder, read from ``bench/encode-compare.ts --json``.

    The service's encoder is TypeScript, so the worker does not run it: ``scripts/encoder-report``
    runs the benchmark on the same bundles (``--bundle DIR`` each, first the baseline) and hands
    its JSON over. Its keys are the bundle folders, resolved; they are replaced by the labels.

    Returns:
        ``{"texts", "rounds": [{label: {calls: texts/s}}], "summary": {label: {calls: {...}}}}``
        where the summary holds the median texts/s and the median, min and max of the
        per-round ratio to the first bundle.

    Raises:
        ValueError: The benchmark did not time exactly these bundles.
    """
    names = {str(folder.resolve()): label for label, folder in bundles}
    if set(raw.get("summary", {})) != set(names):
        raise ValueError(
            f"the service timings are of {sorted(raw.get('summary', {}))}, not of {sorted(names)}"
        )
    return {
        "how": "the service's encoder in-process (its encode-compare benchmark), rotated rounds",
        "texts": raw["texts"],
        "rounds": [{names[k]: v for k, v in run.items()} for run in raw["rounds"]],
        "summary": {names[k]: v for k, v in raw["summary"].items()},
    }


def measure_cpu_time(
    bundles: Sequence[tuple[str, Path]],
    *,
    passages: Sequence[str],
    rounds: int,
    batches: Sequence[int] = (1, 32),
) -> dict[str, Any]:
    """Texts per CPU-second of onnxruntime on one thread, per batch size, ratios to the first.

    The same MS MARCO passages as the service benchmark, tokenized by each bundle; batches of
    32 are length-sorted (as the service's queue groups them). One intra-op thread, timed with
    the thread's own CPU clock: a busy machine slows the wall clock far more than the work.

    Returns:
        Like :func:`service_speed` (keys are batch sizes).
    """
    import onnxruntime as ort

    from qembed_worker.inference.encoder import OnnxEncoder

    encoders = {}
    for label, folder in bundles:
        manifest = read_manifest(folder)
        encoder = OnnxEncoder(folder, manifest["prompts"], manifest["onnx"]["inputs"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        encoder.session = ort.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        encoders[label] = encoder
    runs: list[dict[str, dict[str, float]]] = []
    for _ in range(rounds):
        current: dict[str, dict[str, float]] = {}
        for label, encoder in encoders.items():
            ids = encoder.tokenize(passages, "document")
            current[label] = {}
            for batch in batches:
                order = ids if batch == 1 else sorted(ids, key=len)
                chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
                encoder.run(chunks[0])
                started = time.thread_time()
                for chunk in chunks:
                    encoder.run(chunk)
                current[label][str(batch)] = len(ids) / (time.thread_time() - started)
        runs.append(current)
    return {
        "how": "onnxruntime (Python), 1 thread, texts per CPU-second of that thread",
        "texts": len(passages),
        "rounds": runs,
        "summary": _summarize(runs, [label for label, _ in bundles]),
    }


def _summarize(runs: list[dict[str, dict[str, float]]], labels: list[str]) -> dict[str, Any]:
    base = labels[0]
    summary: dict[str, Any] = {}
    for label in labels:
        summary[label] = {}
        for key in runs[0][label]:
            values = [run[label][key] for run in runs]
            ratios = [run[label][key] / run[base][key] for run in runs]
            summary[label][key] = {
                "texts_per_s": round(statistics.median(values), 1),
                "ratio": round(statistics.median(ratios), 2),
                "ratio_min": round(min(ratios), 2),
                "ratio_max": round(max(ratios), 2),
            }
    return summary


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
    from qembed_worker.data.datasets import load_beir
    from qembed_worker.eval.evaluate import embed_dataset, evaluate_bundle

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
        header += f" service texts/s, calls of {c} (ratio, min-max) |"
        rule += " --- |"
    cpu = report["cpu_time"]["summary"]
    batches = list(cpu[base])
    for b in batches:
        header += f" CPU-time ratio, batch {b} (min-max) |"
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
        for b in batches:
            s = cpu[label][b]
            cells.append(f"{s['ratio']:.2f}x ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})")
        cells.append(f"{info['model_onnx_bytes'] / 1e6:.1f} MB")
        minutes = info["training_minutes"]
        cells.append("-" if minutes is None else f"{minutes} min")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The page's generated block is <!-- encoder-report:table --> (qembed_worker.markdown).
TOOL = "encoder-report"


def write_report(
    *,
    bundles: Sequence[tuple[str, Path]],
    datasets: Sequence[Path],
    out: Path,
    passages: Sequence[str] = (),
    service_timings: dict[str, Any] | None = None,
    rounds: int = 3,
    timings_from: Path | None = None,
) -> dict[str, Any]:
    """Measure the bundles and write the Markdown report and its JSON.

    The Markdown file keeps everything outside the generated table: the table replaces the
    block between two ``<!-- encoder-report:table -->`` markers (added at the end if absent).

    Args:
        bundles: ``(label, folder)``; the first is the float32 baseline.
        datasets: BEIR folders.
        out: The Markdown file; the JSON goes to the same path with ``.json``.
        passages: The texts timed in onnxruntime (the ones the service timings used).
        service_timings: The JSON of ``bench/encode-compare.ts --json`` on ``bundles``.
        rounds: Rounds of the onnxruntime CPU-time measurement.
        timings_from: Reuse the ``speed`` and ``cpu_time`` sections of this JSON report
            instead of ``passages`` and ``service_timings``.

    Raises:
        ValueError: Neither earlier timings nor both ``passages`` and ``service_timings``.

    Returns:
        A summary of what was written.
    """
    started = time.perf_counter()
    quality = measure_quality(bundles, datasets)
    if timings_from is not None:
        earlier = json.loads(timings_from.read_text(encoding="utf-8"))
        speed, cpu_time = earlier["speed"], earlier["cpu_time"]
    elif service_timings is not None and passages:
        speed = service_speed(service_timings, bundles)
        cpu_time = measure_cpu_time(bundles, passages=passages, rounds=rounds)
    else:
        raise ValueError("timing needs the passages and the service timings, or earlier timings")
    report = {
        "bundles": {label: describe(folder) for label, folder in bundles},
        "datasets": [str(d) for d in datasets],
        "quality": quality,
        "speed": speed,
        "cpu_time": cpu_time,
        "multiplier": MULTIPLIER,
    }
    table = render(report)
    write_blocks(out, TOOL, {"table": table})
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return {
        "out": str(out),
        "json": str(json_path),
        "table": table,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
