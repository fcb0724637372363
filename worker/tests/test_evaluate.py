import math
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from qembed_worker.data.datasets import load_beir
from qembed_worker.eval.evaluate import (
    asymmetric_levels,
    bytes_per_doc,
    evaluate_embeddings,
    fidelity,
    rank_all_modes,
    rescore,
    top_k,
    trec_metrics,
)

from .test_datasets import write_beir

DOC_IDS = ["d1", "d2", "d3", "d4", "d5", "d6"]
QRELS = {
    "q1": {"d2": 3, "d4": 1, "gone": 2},  # "gone" is not in the corpus: never retrievable
    "q2": {"d6": 1, "d1": 0},
}


def _dcg(gains: list[int]) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))


def test_metrics_match_hand_computed_trec_definitions() -> None:
    ranked = np.array([[0, 1, 2, 3, 4, 5], [5, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]])
    metrics = trec_metrics(ranked, ["q1", "q2", "q3"], DOC_IDS, QRELS)  # q3 has no judgments
    ndcg_q1 = _dcg([0, 3, 0, 1, 0, 0]) / _dcg([3, 2, 1])
    ndcg_q2 = 1.0
    assert metrics["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-4)
    # q1: 2 of its 3 relevant documents retrieved ("gone" counts in the denominator).
    assert metrics["recall@10"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)
    assert metrics["recall@100"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)
    assert metrics["mrr@10"] == pytest.approx((1 / 2 + 1) / 2, abs=1e-4)


def test_metrics_equal_pytrec_eval_on_a_run_without_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(2, 6))
    ranked = top_k(scores, 6)
    ours = trec_metrics(ranked, ["q1", "q2"], DOC_IDS, QRELS)
    run = {
        q: {d: float(scores[row, i]) for i, d in enumerate(DOC_IDS)}
        for row, q in enumerate(["q1", "q2"])
    }
    reference = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "recall.10"}).evaluate(run)
    assert ours["ndcg@10"] == pytest.approx(np.mean([r["ndcg_cut_10"] for r in reference.values()]))
    assert ours["recall@10"] == pytest.approx(np.mean([r["recall_10"] for r in reference.values()]))


def test_recall_at_100_reads_the_deep_list() -> None:
    doc_ids = [f"d{i}" for i in range(30)]
    qrels = {"q": {"d0": 1, "d25": 1}}
    top10 = np.arange(10)[None, :]
    deep = np.arange(30)[None, :]
    metrics = trec_metrics(top10, ["q"], doc_ids, qrels, deep=deep)
    assert metrics["recall@10"] == 0.5 and metrics["recall@100"] == 1.0


def test_mrr_is_cut_at_ten() -> None:
    doc_ids = [f"d{i}" for i in range(12)]
    qrels = {"q": {"d11": 1}}
    ranked = np.arange(12)[None, :]
    assert trec_metrics(ranked, ["q"], doc_ids, qrels)["mrr@10"] == 0.0


def test_ties_are_broken_by_corpus_order_not_by_trec_eval() -> None:
    scores = np.array([[1.0, 2.0, 2.0, 0.5]])
    assert top_k(scores, 4).tolist() == [[1, 2, 0, 3]]
    # trec_eval alone would sort the tie by document id, descending: "z" before "a".
    doc_ids = ["x", "a", "z", "y"]
    metrics = trec_metrics(top_k(scores, 4), ["q"], doc_ids, {"q": {"a": 1}})
    assert metrics["mrr@10"] == 1.0


def test_rescoring_reorders_candidates_with_ties_by_index() -> None:
    candidates = np.array([[4, 1, 3]])
    scores = np.array([[0.0, 0.2, 9.0, 0.2, 0.9]])
    assert rescore(candidates, scores).tolist() == [[4, 1, 3]]
    assert fidelity(np.array([[1, 2, 3]]), np.array([[3, 4, 1]]), k=3) == pytest.approx(2 / 3)


def hamming_of(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    return ((queries > 0)[:, None, :] != (docs > 0)[None, :, :]).sum(-1)


def test_modes_rank_as_the_service_scores() -> None:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[:5] + 0.05 * rng.normal(size=(5, 16)).astype(np.float32)
    lo, hi = docs.min(axis=0), docs.max(axis=0)
    rankings = rank_all_modes(queries, docs, lo, hi, depth=20, multipliers=(1, 2))
    lists, deep = rankings.lists, rankings.deep
    assert lists[("float32", None)].shape == (5, 10)
    assert deep[("float32", None)].shape == (5, 20)
    assert np.array_equal(lists[("binary", None)], deep[("binary", None)][:, :10])
    # A top-10 search rescores 10 * m candidates, a top-20 search 20 * m.
    assert lists[("binary+int8", 1)].shape == (5, 10)
    assert deep[("binary+int8", 2)].shape == (5, 20)
    for row in range(5):
        assert set(lists[("binary+int8", 1)][row]) == set(
            top_k(-hamming_of(queries, docs), 10)[row]
        )
    hamming = hamming_of(queries, docs)
    binary = deep[("binary", None)]
    for row in range(5):
        assert np.all(np.diff(hamming[row, binary[row]]) >= 0)
        assert lists[("float32", None)][row, 0] == row


def test_report_schema(tmp_path: Path) -> None:
    dataset = load_beir(
        write_beir(
            tmp_path / "d",
            header=False,
            corpus=[{"_id": d, "text": d} for d in DOC_IDS],
            queries=[{"_id": "q1", "text": "a"}, {"_id": "q2", "text": "b"}],
            qrels=[("q1", "d2", 3), ("q2", "d6", 1)],
        )
    )
    rng = np.random.default_rng(1)
    docs = rng.normal(size=(6, 16)).astype(np.float32)
    queries = rng.normal(size=(2, 16)).astype(np.float32)
    report = evaluate_embeddings(
        dataset, queries, docs, docs.min(0), docs.max(0), reference_top=top_k(queries @ docs.T, 10)
    )
    modes = [(r["mode"], r["rescore_multiplier"]) for r in report["results"]]
    assert modes == [
        ("float32", None),
        ("int8", None),
        ("binary", None),
        *[("binary+int8", m) for m in (1, 2, 4, 8, 16)],
    ]
    keys = {"mode", "rescore_multiplier", "ndcg@10", "recall@10", "recall@100", "mrr@10"}
    keys |= {"retention", "fidelity@10", "bytes_per_doc"}
    for entry in report["results"]:
        binary = entry["mode"].startswith("binary")
        assert set(entry) == keys | ({"code_bits", "first_stage", "transform"} if binary else set())
        assert entry.get("transform", "first-dims") == "first-dims"
        assert entry.get("code_bits", 16) == 16
    assert report["results"][0]["fidelity@10"] == 1.0
    assert report["results"][0]["retention"] == 1.0
    assert [r["bytes_per_doc"] for r in report["results"][:4]] == [64, 16, 2, 18]
    assert report["reference_fidelity"][0]["fidelity@10"] == 1.0


def test_a_compact_code_ranks_by_the_first_dimensions_only() -> None:
    rng = np.random.default_rng(2)
    docs = rng.normal(size=(40, 32)).astype(np.float32)
    queries = rng.normal(size=(3, 32)).astype(np.float32)
    lo, hi = docs.min(axis=0), docs.max(axis=0)
    compact = rank_all_modes(queries, docs, lo, hi, depth=40, multipliers=(1,), code_bits=8)
    prefix = rank_all_modes(queries[:, :8], docs[:, :8], lo[:8], hi[:8], depth=40, multipliers=())
    assert np.array_equal(compact.deep[("binary", None)], prefix.deep[("binary", None)])
    # float32 and int8 keep every dimension.
    full = rank_all_modes(queries, docs, lo, hi, depth=40, multipliers=(1,))
    assert np.array_equal(compact.deep[("int8", None)], full.deep[("int8", None)])
    assert bytes_per_doc("binary", 32, 8) == 1 and bytes_per_doc("binary+int8", 32, 8) == 33


def test_the_asymmetric_query_is_quantized_as_the_service_does() -> None:
    # Δ = 0.7 / 7 = 0.1: 0.7 -> 7, 0.25 -> 3 (half up, as Math.round), -0.05 -> 0
    # (Math.round(-0.5) is -0), -0.26 -> -3, 0 -> 0.
    q = np.array([[0.7, 0.25, -0.05, -0.26, 0.0]], dtype=np.float32)
    assert asymmetric_levels(q).tolist() == [[7, 3, 0, -3, 0]]
    assert asymmetric_levels(np.zeros((1, 3), dtype=np.float32)).tolist() == [[0, 0, 0]]
