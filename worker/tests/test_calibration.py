import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qembed_worker.bundle.manifest import check_bundle, read_manifest, sha256_file
from qembed_worker.calibration.ranges import (
    CalibrationOptions,
    calibrate_bundle,
    compute_ranges,
)
from qembed_worker.inference.encoder import OnnxEncoder

from .conftest import TINY_BUNDLE


def test_minmax_ranges_are_the_per_dimension_extremes() -> None:
    x = np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.3]], dtype=np.float32)
    lo, hi = compute_ranges(x)
    assert lo.dtype == hi.dtype == np.float32
    assert lo[:2].tolist() == x.min(axis=0)[:2].tolist()
    assert hi[:2].tolist() == x.max(axis=0)[:2].tolist()
    # A constant dimension is widened by exactly one float32 ulp.
    assert lo[2] == np.float32(0.3)
    assert hi[2] == np.nextafter(np.float32(0.3), np.float32(1))


def test_quantile_ranges_clip_the_tails() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10_000, 4)).astype(np.float32)
    x[0] = 100.0
    lo, hi = compute_ranges(x, "quantile", 0.01)
    assert np.all(hi < 3) and np.all(lo > -3)
    assert np.all(hi > lo)
    expected = np.quantile(x.astype(np.float64), 0.99, axis=0).astype(np.float32)
    assert hi.tolist() == expected.tolist()


@pytest.mark.parametrize("q", [None, 0.0, 0.5, 0.7])
def test_bad_quantiles_are_refused(q: float | None) -> None:
    with pytest.raises(ValueError, match="quantile"):
        compute_ranges(np.zeros((2, 2), dtype=np.float32), "quantile", q)


def test_a_text_embeds_the_same_alone_and_in_a_padded_batch(parity_texts: list[str]) -> None:
    manifest = read_manifest(TINY_BUNDLE)
    encoder = OnnxEncoder(TINY_BUNDLE, manifest["prompts"], manifest["onnx"]["inputs"])
    ids = encoder.tokenize(parity_texts[:12], "query")
    batch = encoder.run(ids)
    for row, token_ids in enumerate(ids):
        alone = encoder.run([token_ids])[0]
        np.testing.assert_allclose(batch[row], alone, atol=2e-6)


def test_prompts_change_the_tokens() -> None:
    manifest = read_manifest(TINY_BUNDLE)
    encoder = OnnxEncoder(TINY_BUNDLE, manifest["prompts"], manifest["onnx"]["inputs"])
    query, document = (
        encoder.tokenize(["hello"], "query")[0],
        encoder.tokenize(["hello"], "document")[0],
    )
    assert query != document
    assert len(encoder.tokenize(["word " * 500], "document")[0]) == manifest["max_tokens"]


def test_calibrate_writes_a_new_bundle_with_new_ranges(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": str(i), "title": f"T{i}", "text": f"text number {i} " * (i % 7 + 1)}
        for i in range(50)
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    summary = calibrate_bundle(
        bundle=TINY_BUNDLE,
        out=out,
        options=CalibrationOptions(corpus=str(corpus), limit=40, method="quantile", quantile=0.05),
    )
    manifest = check_bundle(out)
    old = read_manifest(TINY_BUNDLE)
    assert summary["fingerprint"] == manifest["fingerprint"] != old["fingerprint"]
    for name in ("model.onnx", "tokenizer.json"):
        assert sha256_file(out / name) == sha256_file(TINY_BUNDLE / name)
    calibration = manifest["calibration"]
    assert calibration["method"] == "quantile"
    assert calibration["quantile"] == 0.05
    assert calibration["corpus"]["name"] == "corpus.jsonl"
    assert calibration["corpus"]["texts"] == 40
    assert calibration["corpus"]["input_type"] == "document"
    assert calibration["min"] != old["calibration"]["min"]


def test_calibrate_in_place_and_refuse_to_overwrite(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(TINY_BUNDLE, bundle)
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(f"line {i} about something" for i in range(30)), encoding="utf-8")
    calibrate_bundle(bundle=bundle, out=bundle, options=CalibrationOptions(corpus=str(corpus)))
    assert read_manifest(bundle)["calibration"]["corpus"]["texts"] == 30
    check_bundle(bundle)
    other = tmp_path / "other"
    other.mkdir()
    (other / "something").write_text("x")
    from qembed_worker.bundle.manifest import BundleError

    with pytest.raises(BundleError, match="--force"):
        calibrate_bundle(bundle=bundle, out=other, options=CalibrationOptions(corpus=str(corpus)))


def test_the_fixture_was_calibrated_on_lee_with_minmax() -> None:
    manifest = read_manifest(TINY_BUNDLE)
    encoder = OnnxEncoder(TINY_BUNDLE, manifest["prompts"], manifest["onnx"]["inputs"])
    from qembed_worker.data.corpus import load_corpus

    texts = load_corpus("lee", limit=manifest["calibration"]["corpus"]["texts"]).texts
    lo, hi = compute_ranges(encoder.encode(texts, progress=False))
    assert np.allclose(lo, manifest["calibration"]["min"], atol=1e-6)
    assert np.allclose(hi, manifest["calibration"]["max"], atol=1e-6)
