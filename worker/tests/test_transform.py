"""The collection code transform: ITQ and QAT fits, their evaluation and the artifact contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qembed_worker.cli.main import main
from qembed_worker.jobs.queue import JobCancelledError
from qembed_worker.quant.codes import int8_codes, pack_binary
from qembed_worker.transform import TransformError
from qembed_worker.transform.artifact import read_transform, write_transform
from qembed_worker.transform.codes import first_dims_transform, pack_codes, transform_bits
from qembed_worker.transform.evaluate import Transform, exact_neighbours, first_stage_recall
from qembed_worker.transform.fit import Collection, fit_transform
from qembed_worker.transform.itq import fit_itq, principal_axes
from qembed_worker.transform.qat import QatConfig, train_qat

from .conftest import TINY_BUNDLE

DIMENSION = 64
BITS = 16


def correlated(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors whose first 16 dimensions are noisy copies of one latent factor.

    The other 48 mix 16 independent factors. The signs of the first 16 dimensions are then one
    bit repeated (they agree for all but a few percent of documents), so today's 16-bit code
    splits the collection in two halves and orders each half arbitrarily: its top 40 of ~n/2
    tied documents keeps about 40 / (n / 2) of a query's top-10, 0.16 for n = 500, while a
    code over the principal components sees all 16 factors.
    """
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n, 16))
    copies = factors[:, :1] + 0.05 * rng.standard_normal((n, 16))
    mixed = factors @ rng.standard_normal((16, DIMENSION - 16)) / 4
    x = np.concatenate([copies, mixed], axis=1) + 0.3
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fit(tmp_path: Path, method: str = "qat", name: str = "t", **options) -> dict:
    settings = {"bits": (BITS, 8), "seed": 0, "max_documents": 1000, "holdout": 100, "steps": 40}
    settings.update(options)
    collection = Collection(vectors=correlated(600), model=None, sha256="0")
    return fit_transform(collection, method=method, out=tmp_path / name, **settings)


def recall_rows(manifest: dict) -> dict[tuple[int, str], dict]:
    return {(row["bits"], row["transform"]): row for row in manifest["evaluation"]["rows"]}


def test_qat_reduces_its_training_loss() -> None:
    x = correlated(400)
    mean = x.mean(axis=0)
    axes = principal_axes(x - mean)
    inits = {BITS: fit_itq(x - mean, axes, BITS, seed=0)[0]}
    _, summary = train_qat(x, mean, inits, QatConfig(steps=40, batch=64, pool=128), seed=0)
    assert summary["loss_end"] < summary["loss_start"]


def test_qat_keeps_the_itq_start_when_training_only_hurts() -> None:
    # A learning rate of 10 scrambles the projection at the first step; the validation checks
    # must then keep the start (step 0), unchanged.
    x = correlated(400)
    mean = x.mean(axis=0)
    inits = {BITS: fit_itq(x - mean, principal_axes(x - mean), BITS, seed=0)[0]}
    config = QatConfig(steps=10, batch=64, pool=128, lr=10.0, checks=2)
    trained, summary = train_qat(x, mean, inits, config, seed=0)
    assert summary["kept_step"] == {str(BITS): 0}
    np.testing.assert_array_equal(trained[BITS], inits[BITS])


def test_itq_and_qat_beat_first_dims_on_correlated_dimensions(tmp_path: Path) -> None:
    manifest = fit(tmp_path)
    rows = recall_rows(manifest)
    assert manifest["evaluation"]["queries"] == 100
    first = rows[(BITS, "first-dims")]
    # The docstring of correlated(): about 0.16 for the first dimensions, far more for a fit.
    assert first["hamming"] < 0.35
    for name in ("itq", "qat"):
        for stage in ("hamming", "asymmetric"):
            assert rows[(BITS, name)][stage] > first[stage] + 0.2, (name, stage, rows)


def test_itq_loss_falls_from_the_random_rotation() -> None:
    x = correlated(300)
    centred = x - x.mean(axis=0)
    weights, start, end = fit_itq(centred, principal_axes(centred), BITS, seed=1)
    assert end < start
    # The rows are orthonormal: a rotation of principal axes.
    np.testing.assert_allclose(weights @ weights.T, np.eye(BITS), atol=1e-5)


def test_artifact_round_trip_and_reproducible_fingerprint(tmp_path: Path) -> None:
    first = fit(tmp_path, name="a")
    again = fit(tmp_path, name="b")
    assert first["fingerprint"] == again["fingerprint"]
    assert len(first["fingerprint"]) == 16
    assert (tmp_path / "a" / "w16.npy").read_bytes() == (tmp_path / "b" / "w16.npy").read_bytes()
    loaded = read_transform(tmp_path / "a")
    assert loaded.manifest == json.loads((tmp_path / "a" / "transform.json").read_text())
    assert loaded.manifest["lengths"] == {"16": "w16.npy", "8": "w8.npy"}
    assert loaded.manifest["sample"] == {"documents": 500, "holdout": 100, "seed": 0, "sha256": "0"}
    assert first["training"]["loss_end"] < first["training"]["loss_start"]
    assert np.load(tmp_path / "a" / "mean.npy").dtype == np.dtype("<f4")
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o755
    other = fit(tmp_path, name="c", seed=1)
    assert other["fingerprint"] != first["fingerprint"]


def test_codes_from_the_file_equal_codes_in_memory(tmp_path: Path) -> None:
    x = correlated(300)
    mean = x.mean(axis=0)
    weights, _, _ = fit_itq(x - mean, principal_axes(x - mean), BITS, seed=0)
    write_transform(
        tmp_path / "t",
        method="itq",
        model=None,
        mean=mean,
        weights={BITS: weights},
        sample={},
        training={},
        evaluation={},
    )
    loaded = read_transform(tmp_path / "t")
    from_file = pack_codes(transform_bits(x, loaded.mean, loaded.weights[BITS]))
    np.testing.assert_array_equal(from_file, pack_codes(transform_bits(x, mean, weights)))
    assert from_file.shape == (300, BITS // 8)


def test_a_changed_file_breaks_the_fingerprint(tmp_path: Path) -> None:
    fit(tmp_path, method="itq")
    mean = np.load(tmp_path / "t" / "mean.npy")
    np.save(tmp_path / "t" / "mean.npy", mean + np.float32(1e-3))
    with pytest.raises(TransformError, match="fingerprint"):
        read_transform(tmp_path / "t")


def test_packing_is_packbits_order_and_first_dims_are_todays_code() -> None:
    bits = np.zeros((1, 16), dtype=bool)
    bits[0, 0] = bits[0, 9] = True
    assert pack_codes(bits).tolist() == [[0x80, 0x40]]
    x = correlated(50)
    mean, weights = first_dims_transform(DIMENSION, BITS)
    np.testing.assert_array_equal(
        pack_codes(transform_bits(x, mean, weights)), pack_binary(x[:, :BITS])
    )


def test_recall_is_one_when_the_code_keeps_everything() -> None:
    # A 64-bit code of 64-dimensional vectors whose top-10 is far apart from the rest ranks the
    # way the floats do: each cluster of 10 is a sign pattern of its own.
    rng = np.random.default_rng(3)
    centres = np.sign(rng.standard_normal((20, DIMENSION))).astype(np.float32)
    docs = np.repeat(centres, 10, axis=0) + 0.01 * rng.standard_normal((200, DIMENSION))
    docs = docs.astype(np.float32)
    queries = centres + np.float32(0.01)
    truth = exact_neighbours(queries, docs)
    mean, weights = first_dims_transform(DIMENSION, DIMENSION)
    recall = first_stage_recall(queries, docs, truth, Transform(mean, weights), k=10)
    assert recall == {"hamming": 1.0, "asymmetric": 1.0}


def test_progress_and_cancel(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    fit(tmp_path, name="p", steps=5, progress=lambda step, total, loss: seen.append((step, total)))
    assert seen == [(step, 5) for step in range(1, 6)]
    with pytest.raises(JobCancelledError):
        fit(tmp_path, name="x", cancelled=lambda: True)
    assert not (tmp_path / "x").exists()


def run_cli(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    code = main(["fit-transform", "--out", str(tmp_path / "out"), "--steps", "5", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("bits", "message"),
    [("12", "--bits 12: a code length is a positive multiple of 8"), ("72", "--bits 72")],
)
def test_bad_code_lengths_are_refused(tmp_path: Path, capsys, bits: str, message: str) -> None:
    np.save(tmp_path / "v.npy", correlated(200))
    code, err = run_cli(tmp_path, capsys, "--vectors", str(tmp_path / "v.npy"), "--bits", bits)
    assert code == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_empty_input_and_too_large_holdout_are_refused(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "empty.npy", np.zeros((0, DIMENSION), np.float32))
    code, err = run_cli(tmp_path, capsys, "--vectors", str(tmp_path / "empty.npy"))
    assert code == 1
    assert "empty input" in err
    np.save(tmp_path / "v.npy", correlated(200))
    code, err = run_cli(tmp_path, capsys, "--vectors", str(tmp_path / "v.npy"), "--bits", "16")
    assert code == 1
    assert "--holdout 1000 leaves 0 of the 200 documents" in err
    assert not (tmp_path / "out").exists()


def test_a_bundle_of_another_dimension_is_refused(tmp_path: Path, capsys) -> None:
    codes = int8_codes(correlated(200), np.full(DIMENSION, -1), np.full(DIMENSION, 1))
    np.save(tmp_path / "c.npy", codes)
    code, err = run_cli(
        tmp_path, capsys, "--int8", str(tmp_path / "c.npy"), "--bundle", str(TINY_BUNDLE)
    )
    assert code == 1
    assert "has 64 dimensions but bundle" in err
    assert "has 32" in err
    assert not (tmp_path / "out").exists()


def test_int8_codes_with_their_bundle_fit_end_to_end(tmp_path: Path, capsys) -> None:
    manifest = json.loads((TINY_BUNDLE / "manifest.json").read_text())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 32)).astype(np.float32) @ rng.standard_normal((32, 32)) / 8
    calibration = manifest["calibration"]
    np.save(tmp_path / "c.npy", int8_codes(x, calibration["min"], calibration["max"]))
    args = ["--int8", str(tmp_path / "c.npy"), "--bundle", str(TINY_BUNDLE)]
    code, _ = run_cli(tmp_path, capsys, *args, "--bits", "16", "--holdout", "50")
    assert code == 0
    written = read_transform(tmp_path / "out").manifest
    assert written["model"] == manifest["fingerprint"]
    assert written["method"] == "qat"
    assert [row["transform"] for row in written["evaluation"]["rows"]] == [
        "first-dims",
        "itq",
        "qat",
    ]
