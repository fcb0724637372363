"""eval-bundle's code transforms: fitted on the evaluated corpus, ranked as the service ranks."""

from pathlib import Path

import numpy as np
import pytest

from qembed_worker.cli.main import main
from qembed_worker.data.datasets import load_beir
from qembed_worker.eval.evaluate import (
    evaluate_embeddings,
    format_transform_table,
    rank_all_modes,
    top_k,
)
from qembed_worker.eval.transforms import first_stage_sides, fit_collection, fit_holdout
from qembed_worker.quant.codes import dequantize_int8, int8_codes
from qembed_worker.transform.codes import first_dims_transform, transform_bits
from qembed_worker.transform.evaluate import Transform

from .test_datasets import write_beir


def _collection(n: int, d: int, noise_dims: int, seed: int) -> np.ndarray:
    """Unit vectors whose first ``noise_dims`` dimensions are faint noise (first dims see none)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, :noise_dims] *= 0.01
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_service_holdout_rule() -> None:
    assert [fit_holdout(n) for n in (671, 5000, 245_327)] == [100, 500, 1000]


def test_first_dims_as_a_transform_gives_first_dims_codes() -> None:
    x = _collection(20, 16, 0, 0)
    mean, w = first_dims_transform(16, 8)
    fitted = first_stage_sides(x[:3], x, 8, Transform(mean, w))
    plain = first_stage_sides(x[:3], x, 8, None)
    for a, b in zip(fitted, plain, strict=True):
        assert np.array_equal(a, b)


def test_a_transform_ranks_by_codes_recomputed_from_the_int8_codes() -> None:
    docs = _collection(60, 16, 0, 1)
    queries = docs[:4] + 0.05 * np.random.default_rng(2).normal(size=(4, 16)).astype(np.float32)
    lo, hi = docs.min(axis=0), docs.max(axis=0)
    rng = np.random.default_rng(3)
    transform = Transform(
        rng.normal(size=16).astype(np.float32) * 0.01, rng.normal(size=(8, 16)).astype(np.float32)
    )
    rankings = rank_all_modes(
        queries, docs, lo, hi, depth=20, multipliers=(1,), code_bits=8, transform=transform
    )
    stored = dequantize_int8(int8_codes(docs, lo, hi), lo, hi)
    signs = lambda b: np.where(b, 1.0, -1.0)  # noqa: E731
    dot = (
        signs(transform_bits(queries, transform.mean, transform.weights))
        @ signs(transform_bits(stored, transform.mean, transform.weights)).T
    )
    assert np.array_equal(rankings.deep[("binary", None)], top_k(dot, 20))
    with pytest.raises(ValueError, match="8-bit transform for a 16-bit"):
        rank_all_modes(queries, docs, lo, hi, code_bits=16, transform=transform)


def test_a_fitted_transform_beats_first_dims_on_a_collection_whose_first_dimensions_carry_nothing(
    tmp_path: Path,
) -> None:
    d, n = 32, 400
    docs = _collection(n, d, 8, 4)
    rng = np.random.default_rng(5)
    picked = rng.choice(n, 30, replace=False)
    queries = docs[picked] + 0.1 * rng.normal(size=(30, d)).astype(np.float32)
    ids = [f"d{i}" for i in range(n)]
    dataset = load_beir(
        write_beir(
            tmp_path / "d",
            header=False,
            corpus=[{"_id": i, "text": i} for i in ids],
            queries=[{"_id": f"q{j}", "text": f"q{j}"} for j in range(30)],
            qrels=[(f"q{j}", ids[i], 1) for j, i in enumerate(picked)],
        )
    )
    lo, hi = docs.min(axis=0), docs.max(axis=0)
    fitted = fit_collection(
        dequantize_int8(int8_codes(docs, lo, hi), lo, hi), ["itq"], [8], model=None
    )
    transforms, summary = fitted["itq"]
    assert summary["sample"]["holdout"] == 100 and summary["sample"]["documents"] == 300
    results = []
    for name, transform in (("first-dims", None), ("itq", transforms[8])):
        for stage in ("hamming", "asymmetric"):
            one = evaluate_embeddings(
                dataset,
                queries,
                docs,
                lo,
                hi,
                multipliers=(4,),
                code_bits=8,
                first_stage=stage,
                transform=transform,
                transform_name=name,
            )
            results += [r for r in one["results"] if r["mode"].startswith("binary")]
    binary = {
        (r["transform"], r["first_stage"]): r["retention"] for r in results if r["mode"] == "binary"
    }
    for stage in ("hamming", "asymmetric"):
        assert binary[("itq", stage)] > binary[("first-dims", stage)] + 0.2
    table = format_transform_table({"results": results})
    assert (
        "| 8 bits | hamming | " in table
        and table.splitlines()[1] == "| code | first stage | first-dims | itq |"
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [("--first-stage", "sideways"), ("--transforms", "pca"), ("--transforms", "itq,itq")],
)
def test_unknown_first_stages_and_transforms_are_usage_errors(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval-bundle", "--bundle", "b", "--dataset", "d", option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err
