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

The binary modes run once per code length, first stage (Hamming, or asymmetric: a 4-bit query
against the code bits) and code transform: first dims (the signs of the first dimensions), and
with ``transforms`` each fitted on the evaluated corpus as the service fits a collection's
(:mod:`qembed_worker.eval.transforms`).

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
from qembed_worker.eval.transforms import FIRST_DIMS, first_stage_sides, fit_collection
from qembed_worker.inference.embeddings import bundle_embeddings
from qembed_worker.quant.codes import dequantize_int8, int8_codes
from qembed_worker.transform.evaluate import Transform

MULTIPLIERS = (1, 2, 4, 8, 16)
FIRST_STAGES = ("hamming", "asymmetric")
#: What a binary mode's entries carry besides the metrics.
BINARY_KEYS = ("code_bits", "first_stage", "transform")
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
    transform: Transform | None = None,
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
        transform: The code transform (``None``: first dims). Its codes are computed from the
            documents' dequantized int8 codes, as a collection's are at a switch.

    Returns:
        The rankings.
    """
    if first_stage not in FIRST_STAGES:
        raise ValueError(f"first stage {first_stage!r}: one of {FIRST_STAGES}")
    q64 = queries.astype(np.float64)
    exact = q64 @ documents.astype(np.float64).T
    stored = dequantize_int8(int8_codes(documents, lo, hi), lo, hi)
    int8_scores = q64 @ stored.astype(np.float64).T
    bits = code_bits or queries.shape[1]
    doc_bits, query_bits, query_vector = first_stage_sides(
        queries, documents if transform is None else stored, bits, transform
    )

    def as_signs(b: np.ndarray) -> np.ndarray:
        return np.where(b, np.float32(1), np.float32(-1))

    query_side = (
        asymmetric_levels(query_vector).astype(np.float32)
        if first_stage == "asymmetric"
        else as_signs(query_bits)
    )
    # Integer scores below 2**24: exact in float32; for Hamming, hamming = (bits - dot) / 2.
    dot = query_side @ as_signs(doc_bits).T
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
    transform: Transform | None = None,
    transform_name: str = FIRST_DIMS,
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
        transform: The code transform of the binary modes (``None``: first dims).
        transform_name: Its name in the results.

    Returns:
        ``{"results": [...], "reference_fidelity": [...] or None}``; binary modes carry
        ``code_bits``, ``first_stage`` and ``transform``.
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
        transform=transform,
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
            entry["transform"] = transform_name
        results.append(entry)
        if reference_top is not None:
            reference.append(
                {
                    "mode": mode,
                    "rescore_multiplier": m,
                    "fidelity@10": fidelity(ranked, reference_top),
                    **{k: entry[k] for k in BINARY_KEYS if k in entry},
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
    first_stages: Sequence[str] = ("hamming",),
    transforms: Sequence[str] = (),
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
        first_stages: ``hamming`` and/or ``asymmetric``: the binary modes run for each.
        transforms: Code transforms (``itq``, ``qat``) fitted on the corpus's int8 codes at
            every code length and measured beside first dims
            (:func:`qembed_worker.eval.transforms.fit_collection`).

    Returns:
        The report: ``bundle``, ``dataset``, ``results``, ``reference_fidelity``, the
        ``transforms`` fitted (their fit records), timings.

    Raises:
        BundleError: A bundle is unreadable or has no calibration.
        DatasetError: The dataset is missing files or malformed.
        TransformError: An unknown transform, or a corpus too small to fit one on.
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
    lengths = list(code_bits) or [documents.shape[1]]
    fitted = (
        fit_collection(
            dequantize_int8(int8_codes(documents, lo, hi), lo, hi),
            transforms,
            lengths,
            model=manifest.get("fingerprint"),
        )
        if transforms
        else {}
    )
    fit_done = time.perf_counter()
    report: dict[str, Any] = {"results": [], "reference_fidelity": None}
    runs = [
        (bits, stage, name, None if name == FIRST_DIMS else fitted[name][0][bits])
        for bits in lengths
        for stage in first_stages
        for name in [FIRST_DIMS, *fitted]
    ]
    for n, (bits, stage, name, transform) in enumerate(runs):
        one = evaluate_embeddings(
            dataset,
            queries,
            documents,
            lo,
            hi,
            reference_top=reference_top,
            multipliers=tuple(multipliers),
            code_bits=bits,
            first_stage=stage,
            transform=transform,
            transform_name=name,
        )
        # float32 and int8 depend on neither the code length, the first stage nor the transform.
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
        "transforms": {name: summary for name, (_, summary) in fitted.items()},
        "seconds": {
            "embedding": round(embedded - started, 1),
            "fitting": round(fit_done - embedded, 1),
            "scoring": round(time.perf_counter() - fit_done, 1),
        },
    }


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of a report's results (and reference fidelity when present)."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (
            r["mode"],
            r["rescore_multiplier"],
            r.get("code_bits"),
            r.get("first_stage"),
            r.get("transform"),
        )

    def name(r: dict[str, Any]) -> str:
        if "code_bits" not in r:
            return r["mode"]
        return f"{r['mode']} ({r['code_bits']} bits, {r['first_stage']}, {r['transform']})"

    reference = {key(r): r["fidelity@10"] for r in report.get("reference_fidelity") or []}
    header = "| mode | m | NDCG@10 | R@10 | R@100 | MRR@10 | retention | fidelity@10 |"
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- |"
    if reference:
        header += " fidelity@10 vs reference |"
        rule += " --- |"
    header += " bytes/doc |"
    rule += " --- |"
    lines = [header, rule]
    for r in report["results"]:
        cells = [
            name(r),
            "" if r["rescore_multiplier"] is None else str(r["rescore_multiplier"]),
            f"{r['ndcg@10']:.4f}",
            f"{r['recall@10']:.4f}",
            f"{r['recall@100']:.4f}",
            f"{r['mrr@10']:.4f}",
            "" if r["retention"] is None else f"{r['retention']:.4f}",
            f"{r['fidelity@10']:.3f}",
        ]
        if reference:
            cells.append(f"{reference[key(r)]:.3f}")
        cells.append(str(r["bytes_per_doc"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_transform_table(report: dict[str, Any]) -> str:
    """NDCG@10 retention side by side: a line per length and first stage, a column per transform.

    Each cell: the first stage alone / after int8 rescoring at each multiplier, in percent of
    float32's NDCG@10.
    """
    binary = [r for r in report["results"] if r["mode"].startswith("binary")]
    names = list(dict.fromkeys(r["transform"] for r in binary))
    multipliers = sorted({r["rescore_multiplier"] for r in binary if r["rescore_multiplier"]})
    lines = [
        "NDCG@10 retention (% of float32): binary / "
        + " / ".join(f"+int8@{m}" for m in multipliers),
        "| code | first stage | " + " | ".join(names) + " |",
        "|" + " --- |" * (len(names) + 2),
    ]
    groups = dict.fromkeys((r["code_bits"], r["first_stage"]) for r in binary)
    for bits, stage in groups:

        def cell(name: str, bits: int = bits, stage: str = stage) -> str:
            of = {
                r["rescore_multiplier"]: r["retention"]
                for r in binary
                if (r["code_bits"], r["first_stage"], r["transform"]) == (bits, stage, name)
            }
            return " / ".join(
                "-" if of.get(m) is None else f"{100 * of[m]:.1f}" for m in [None, *multipliers]
            )

        lines.append(f"| {bits} bits | {stage} | " + " | ".join(map(cell, names)) + " |")
    return "\n".join(lines)
