"""Retrieval evaluation of a bundle on a BEIR dataset, at the precisions the service searches.

Modes (the same as the service's ``npm run eval``):

- ``float32``: exact cosine of float32 query and document embeddings;
- ``int8``: float32 query against int8 documents read as bucket centres (the service's
  rescoring, ``src/quantization/dequantize.ts``);
- ``binary``: Hamming distance between binary query and document codes;
- ``binary+int8``: a search for the top ``k``: the Hamming top ``k·m`` candidates, reordered
  by the int8 score, for ``m`` in :data:`MULTIPLIERS`. As in the service's ``npm run eval``,
  NDCG@10, Recall@10, MRR@10 and fidelity@10 come from a top-10 search (``10·m``
  candidates) and Recall@100 from a top-100 search (``100·m`` candidates).

Rankings break ties by corpus order (the position in ``corpus.jsonl``), so every run is
deterministic. Metrics are trec_eval's, computed by pytrec_eval on those rankings; the run
handed to pytrec_eval carries strictly decreasing scores derived from the rank, so trec_eval's
own tie-breaking (by document id) never reorders it. Queries without judgments are skipped by
the metrics; judged documents absent from the corpus stay in the judgments and count as
relevant documents that cannot be retrieved. Fidelity@10 averages over all queries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker.bundle.manifest import BundleError, read_manifest
from qembed_worker.data.datasets import BeirDataset, DatasetError, load_beir, warn
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.quant.codes import dequantize_int8, int8_codes, signs

MULTIPLIERS = (1, 2, 4, 8, 16)
DEPTH = 100
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores of each row, ties broken by lower index.

    Args:
        scores: ``(queries, documents)`` scores, higher is better.
        k: How many to keep (at most the number of documents).

    Returns:
        ``(queries, min(k, documents))`` int64 indices, best first.
    """
    k = min(k, scores.shape[1])
    # A stable sort of the negated scores keeps equal scores in index order.
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k].astype(np.int64)


def rescore(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Reorder each row's candidates by ``scores`` (higher first), ties by lower index.

    Args:
        candidates: ``(queries, c)`` document indices.
        scores: ``(queries, documents)`` rescoring scores.

    Returns:
        ``(queries, c)`` indices.
    """
    out = np.empty_like(candidates)
    for row, cand in enumerate(candidates):
        cand_scores = scores[row, cand]
        order = np.lexsort((cand, -cand_scores))
        out[row] = cand[order]
    return out


@dataclass
class Rankings:
    """Ranked document indices per mode.

    Attributes:
        lists: ``{(mode, multiplier or None): (queries, >= 10) indices}``: the top-10 search
            (for binary+int8, its ``10·m`` rescored candidates).
        deep: The same keys: the top-``depth`` search (for binary+int8, ``depth·m`` candidates
            rescored, cut at ``depth``).
    """

    lists: dict[tuple[str, int | None], np.ndarray]
    deep: dict[tuple[str, int | None], np.ndarray]


def asymmetric_levels(queries: np.ndarray) -> np.ndarray:
    """Each query quantized to 4 bits a dimension as the service's asymmetric first stage does.

    ``k_i = round(q_i / Δ)`` clipped to [-7, 7] with ``Δ = max|q| / 7``, rounding half up as
    JavaScript's ``Math.round`` does; scores ``Σ k_i s_i`` against the sign vector rank like
    the service's.
    """
    q = np.asarray(queries, dtype=np.float32)
    delta = np.abs(q).max(axis=1, keepdims=True) / np.float32(7)
    delta = np.where(delta == 0, np.float32(1), delta)
    return np.clip(np.floor(q / delta + np.float32(0.5)), -7, 7).astype(np.int8)


def rank_all_modes(
    queries: np.ndarray,
    documents: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    depth: int = DEPTH,
    multipliers: tuple[int, ...] = MULTIPLIERS,
    code_bits: int | None = None,
    first_stage: str = "hamming",
) -> Rankings:
    """Rank documents for every query in every mode.

    Args:
        queries: ``(q, d)`` float32 query embeddings.
        documents: ``(n, d)`` float32 document embeddings.
        lo: Calibration minimums of the bundle.
        hi: Calibration maximums of the bundle.
        depth: Length of the deep lists (Recall@100).
        multipliers: Rescore multipliers for ``binary+int8``.
        code_bits: The binary code's length: the signs of the first ``code_bits`` dimensions
            (a compact first stage; all dimensions when ``None``). int8 keeps every dimension.
        first_stage: ``hamming`` (binary query) or ``asymmetric``: the query quantized to 4
            bits a dimension (``src/search/asymmetric.ts``) against the documents' signs.

    Returns:
        The rankings.
    """
    q64 = queries.astype(np.float64)
    exact = q64 @ documents.astype(np.float64).T
    int8_scores = q64 @ dequantize_int8(int8_codes(documents, lo, hi), lo, hi).astype(np.float64).T
    # ±1 dot products are integers below 2**24: exact in float32. hamming = (d - dot) / 2.
    bits = code_bits or queries.shape[1]
    query_side = (
        asymmetric_levels(queries[:, :bits])
        if first_stage == "asymmetric"
        else signs(queries[:, :bits])
    )
    # Integer scores below 2**24: exact in float32; for Hamming, hamming = (bits - dot) / 2.
    dot = query_side.astype(np.float32) @ signs(documents[:, :bits]).astype(np.float32).T
    deep: dict[tuple[str, int | None], np.ndarray] = {
        ("float32", None): top_k(exact, depth),
        ("int8", None): top_k(int8_scores, depth),
        ("binary", None): top_k(dot, depth),
    }
    # With ties broken by index, a top-10 search is the head of the top-depth one.
    lists = {key: ranked[:, :10] for key, ranked in deep.items()}
    for m in multipliers:
        lists[("binary+int8", m)] = rescore(top_k(dot, 10 * m), int8_scores)
        deep[("binary+int8", m)] = rescore(top_k(dot, depth * m), int8_scores)[:, :depth]
    return Rankings(lists, deep)


def trec_metrics(
    ranked: np.ndarray,
    query_ids: list[str],
    doc_ids: list[str],
    qrels: dict[str, dict[str, int]],
    deep: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean trec_eval metrics of one mode over the judged queries.

    Args:
        ranked: ``(queries, >= 10)`` document indices, best first, one row per ``query_ids``:
            the ranking NDCG@10, Recall@10 and MRR@10 are read from.
        query_ids: Query ids in row order.
        doc_ids: Document ids in corpus order.
        qrels: Judgments (only queries present here are evaluated).
        deep: The ranking Recall@100 is read from (``ranked`` when ``None``).

    Returns:
        ``{"ndcg@10", "recall@10", "recall@100", "mrr@10"}`` averaged over judged queries.
    """
    import pytrec_eval

    judged = [(row, q) for row, q in enumerate(query_ids) if q in qrels]
    if not judged:
        raise DatasetError("no query has judgments")
    deep = ranked if deep is None else deep

    def run_of(lists: np.ndarray, cut: int) -> dict[str, dict[str, float]]:
        run = {}
        for row, query_id in judged:
            docs = lists[row][:cut]
            # Strictly decreasing scores from the rank: trec_eval keeps exactly this order.
            run[query_id] = {doc_ids[i]: float(len(docs) - r) for r, i in enumerate(docs)}
        return run

    judged_qrels = {q: qrels[q] for _, q in judged}
    top10 = pytrec_eval.RelevanceEvaluator(
        judged_qrels, {"ndcg_cut.10", "recall.10", "recip_rank"}
    ).evaluate(run_of(ranked, 10))
    top100 = pytrec_eval.RelevanceEvaluator(judged_qrels, {"recall.100"}).evaluate(
        run_of(deep, DEPTH)
    )
    n = len(judged)
    return {
        "ndcg@10": sum(r["ndcg_cut_10"] for r in top10.values()) / n,
        "recall@10": sum(r["recall_10"] for r in top10.values()) / n,
        "recall@100": sum(r["recall_100"] for r in top100.values()) / n,
        "mrr@10": sum(r["recip_rank"] for r in top10.values()) / n,
    }


def fidelity(ranked: np.ndarray, reference: np.ndarray, k: int = 10) -> float:
    """Mean over rows of ``|top-k of ranked ∩ top-k of reference| / k``.

    ``k`` is capped by the reference list's length (a corpus smaller than ``k``).
    """
    total = 0.0
    for row, ref in zip(ranked, reference, strict=True):
        size = min(k, len(ref))
        total += len(set(row[:k].tolist()) & set(ref[:k].tolist())) / size
    return total / len(ranked)


def bytes_per_doc(mode: str, dimension: int, code_bits: int | None = None) -> int:
    """Bytes one document takes in the mode: binary+int8 stores both codes.

    ``code_bits`` is the binary code's length (``dimension`` when ``None``).
    """
    binary = (code_bits or dimension) // 8
    return {
        "float32": 4 * dimension,
        "int8": dimension,
        "binary": binary,
        "binary+int8": dimension + binary,
    }[mode]


def evaluate_embeddings(
    dataset: BeirDataset,
    queries: np.ndarray,
    documents: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    reference_top: np.ndarray | None = None,
    multipliers: tuple[int, ...] = MULTIPLIERS,
    code_bits: int | None = None,
    first_stage: str = "hamming",
) -> dict[str, Any]:
    """Evaluate embeddings in every mode.

    Args:
        dataset: The dataset with queries and judgments.
        queries: ``(queries, d)`` float32, in ``dataset.queries`` order.
        documents: ``(documents, d)`` float32, in corpus order.
        lo: Calibration minimums.
        hi: Calibration maximums.
        reference_top: Another model's float32 rankings (``(queries, >=10)`` indices) to
            measure fidelity against as well.
        multipliers: Rescore multipliers.
        code_bits: The binary code's length (see :func:`rank_all_modes`).
        first_stage: ``hamming`` or ``asymmetric`` (see :func:`rank_all_modes`).

    Returns:
        ``{"results": [...], "reference_fidelity": [...] or None}``; binary modes carry
        ``code_bits``.
    """
    assert dataset.queries is not None and dataset.qrels is not None
    dimension = documents.shape[1]
    if code_bits is not None and not (0 < code_bits <= dimension and code_bits % 8 == 0):
        raise BundleError(
            f"code length {code_bits} bits: a multiple of 8 up to the dimension ({dimension})"
        )
    rankings = rank_all_modes(
        queries,
        documents,
        lo,
        hi,
        multipliers=multipliers,
        code_bits=code_bits,
        first_stage=first_stage,
    )
    exact = rankings.lists[("float32", None)]
    results = []
    reference = []
    base_ndcg = None
    for (mode, m), ranked in rankings.lists.items():
        metrics = trec_metrics(
            ranked,
            dataset.queries.ids,
            dataset.corpus.ids,
            dataset.qrels,
            deep=rankings.deep[(mode, m)],
        )
        if mode == "float32":
            base_ndcg = metrics["ndcg@10"]
        assert base_ndcg is not None
        entry = {
            "mode": mode,
            "rescore_multiplier": m,
            **metrics,
            "retention": metrics["ndcg@10"] / base_ndcg if base_ndcg > 0 else None,
            "fidelity@10": fidelity(ranked, exact),
            "bytes_per_doc": bytes_per_doc(mode, dimension, code_bits),
        }
        if mode.startswith("binary"):
            entry["code_bits"] = code_bits or dimension
            entry["first_stage"] = first_stage
        results.append(entry)
        if reference_top is not None:
            reference.append(
                {
                    "mode": mode,
                    "rescore_multiplier": m,
                    "fidelity@10": fidelity(ranked, reference_top),
                    **({"code_bits": entry["code_bits"]} if "code_bits" in entry else {}),
                }
            )
    return {
        "results": results,
        "reference_fidelity": reference if reference_top is not None else None,
    }


def _ranges(manifest: dict[str, Any], bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    calibration = manifest.get("calibration")
    if not isinstance(calibration, dict) or "min" not in calibration or "max" not in calibration:
        raise BundleError(f"{bundle}: the manifest has no calibration ranges")
    return (
        np.asarray(calibration["min"], dtype=np.float32),
        np.asarray(calibration["max"], dtype=np.float32),
    )


def embed_dataset(
    bundle: Path,
    dataset: BeirDataset,
    *,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed a dataset's queries (query prompt) and corpus (document prompt) with a bundle."""
    assert dataset.queries is not None
    manifest = read_manifest(bundle)
    common = {
        "cache_dir": cache_dir,
        "use_cache": use_cache,
        "batch_size": batch_size,
        "manifest": manifest,
    }
    queries = bundle_embeddings(
        bundle, dataset.queries.texts, "query", label=f"{dataset.name} query", **common
    )
    documents = bundle_embeddings(
        bundle, dataset.corpus.texts, "document", label=f"{dataset.name} document", **common
    )
    return queries, documents


def _bundle_info(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": str(bundle),
        "name": manifest.get("name"),
        "fingerprint": manifest.get("fingerprint"),
        "dimension": manifest.get("dimension"),
        "binary_code_bits": manifest.get("binary_code_bits"),
        "calibration": {
            k: manifest["calibration"].get(k) for k in ("method", "quantile", "corpus")
        },
    }


def evaluate_bundle(
    *,
    bundle: Path,
    dataset_dir: Path,
    reference_bundle: Path | None = None,
    split: str = "test",
    cache_dir: Path | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
    code_bits: Sequence[int] = (),
    multipliers: tuple[int, ...] = MULTIPLIERS,
    first_stage: str = "hamming",
) -> dict[str, Any]:
    """Evaluate a bundle on a BEIR dataset in every mode (see the module docstring).

    Args:
        bundle: The bundle to evaluate.
        dataset_dir: The BEIR folder.
        reference_bundle: Also measure fidelity against this bundle's float32 top-10.
        split: The qrels split.
        cache_dir: Embedding cache folder.
        use_cache: Read and write the embedding cache.
        batch_size: Texts per onnxruntime call.
        code_bits: Binary code lengths to measure, each the first ``N`` dimensions' signs
            (default: the full length only); binary modes are reported once per length. The
            bundle's ``binary_code_bits`` says which lengths it was trained for, but any
            multiple of 8 can be measured.
        multipliers: Rescore multipliers of ``binary+int8``.
        first_stage: ``hamming`` or ``asymmetric`` for the binary modes.

    Returns:
        The report: ``bundle``, ``dataset``, ``results``, ``reference_fidelity``, timings.

    Raises:
        BundleError: A bundle is unreadable or has no calibration.
        DatasetError: The dataset is missing files or malformed.
    """
    started = time.perf_counter()
    manifest = read_manifest(bundle)
    lo, hi = _ranges(manifest, bundle)
    reference_manifest = read_manifest(reference_bundle) if reference_bundle else None
    dataset = load_beir(dataset_dir, split=split)
    warn(dataset.warnings)
    assert dataset.queries is not None and dataset.qrels is not None
    options = {"cache_dir": cache_dir, "use_cache": use_cache, "batch_size": batch_size}
    queries, documents = embed_dataset(bundle, dataset, **options)
    if documents.shape[1] != lo.size:
        raise BundleError(
            f"{bundle}: embeddings have {documents.shape[1]} dimensions, the calibration {lo.size}"
        )
    reference_top = None
    if reference_bundle is not None:
        ref_queries, ref_documents = embed_dataset(reference_bundle, dataset, **options)
        reference_top = top_k(
            ref_queries.astype(np.float64) @ ref_documents.astype(np.float64).T, 10
        )
    embedded = time.perf_counter()
    report: dict[str, Any] = {"results": [], "reference_fidelity": None}
    for n, bits in enumerate(code_bits or [None]):
        one = evaluate_embeddings(
            dataset,
            queries,
            documents,
            lo,
            hi,
            reference_top=reference_top,
            multipliers=tuple(multipliers),
            code_bits=bits,
            first_stage=first_stage,
        )
        # float32 and int8 do not depend on the code length: reported once.
        keep = [n == 0 or r["mode"].startswith("binary") for r in one["results"]]
        report["results"] += [r for r, k in zip(one["results"], keep, strict=True) if k]
        if one["reference_fidelity"] is not None:
            report["reference_fidelity"] = (report["reference_fidelity"] or []) + [
                r for r, k in zip(one["reference_fidelity"], keep, strict=True) if k
            ]
    judged = sum(1 for q in dataset.queries.ids if q in dataset.qrels)
    return {
        "bundle": _bundle_info(bundle, manifest),
        "reference_bundle": (
            _bundle_info(reference_bundle, reference_manifest)
            if reference_bundle is not None and reference_manifest is not None
            else None
        ),
        "dataset": {
            "name": dataset.name,
            "path": str(dataset_dir),
            "split": split,
            "documents": len(dataset.corpus.ids),
            "queries": len(dataset.queries.ids),
            "judged_queries": judged,
            "sha256": dataset.hashes,
            "warnings": dataset.warnings,
        },
        "tie_breaking": "corpus order",
        **report,
        "seconds": {
            "embedding": round(embedded - started, 1),
            "scoring": round(time.perf_counter() - embedded, 1),
        },
    }


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of a report's results (and reference fidelity when present)."""
    reference = {
        (r["mode"], r["rescore_multiplier"], r.get("code_bits")): r["fidelity@10"]
        for r in report.get("reference_fidelity") or []
    }
    header = "| mode | m | NDCG@10 | R@10 | R@100 | MRR@10 | retention | fidelity@10 |"
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- |"
    if reference:
        header += " fidelity@10 vs reference |"
        rule += " --- |"
    header += " bytes/doc |"
    rule += " --- |"
    lines = [header, rule]
    for r in report["results"]:
        key = (r["mode"], r["rescore_multiplier"], r.get("code_bits"))
        cells = [
            r["mode"] + (f" ({r['code_bits']} bits)" if "code_bits" in r else ""),
            "" if r["rescore_multiplier"] is None else str(r["rescore_multiplier"]),
            f"{r['ndcg@10']:.4f}",
            f"{r['recall@10']:.4f}",
            f"{r['recall@100']:.4f}",
            f"{r['mrr@10']:.4f}",
            "" if r["retention"] is None else f"{r['retention']:.4f}",
            f"{r['fidelity@10']:.3f}",
        ]
        if reference:
            cells.append(f"{reference[key]:.3f}")
        cells.append(str(r["bytes_per_doc"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
