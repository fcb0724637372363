import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qembed_worker.bundle.jsonio import dumps, f32_list, write_json
from qembed_worker.bundle.manifest import (
    BundleError,
    calibration_sha256,
    check_bundle,
    compute_fingerprint,
    fingerprint_of,
    json_string,
    read_manifest,
    write_bundle_manifest,
)

from .conftest import TINY_BUNDLE


def test_fingerprint_follows_the_documented_text() -> None:
    lo = np.array([-0.5, -0.25], dtype=np.float32)
    hi = np.array([0.5, 0.75], dtype=np.float32)
    calibration = hashlib.sha256(lo.astype("<f4").tobytes() + hi.astype("<f4").tobytes())
    text = "\n".join(
        [
            "qembed.bundle/v1",
            "a" * 64,
            "b" * 64,
            calibration.hexdigest(),
            "16",
            "128",
            '"query: "',
            '"passage:\\n é"',
        ]
    )
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    assert calibration_sha256(lo, hi) == calibration.hexdigest()
    fingerprint = compute_fingerprint(
        model_sha256="a" * 64,
        tokenizer_sha256="b" * 64,
        calibration_sha=calibration.hexdigest(),
        dimension=16,
        max_tokens=128,
        query_prompt="query: ",
        document_prompt="passage:\n é",
    )
    assert fingerprint == expected


def test_prompts_are_encoded_like_json_stringify() -> None:
    # JSON.stringify keeps non-ASCII literal and escapes quotes, backslashes and controls.
    assert json_string('é "x"\\\n\t\u0001') == '"é \\"x\\"\\\\\\n\\t\\u0001"'


def test_float32_values_round_trip_through_json() -> None:
    values = np.array([0.1, -1e-38, 3.4e38, 1.4e-45, -0.0, 1 / 3], dtype=np.float32)
    parsed = np.array(json.loads(json.dumps(f32_list(values))), dtype=np.float32)
    assert parsed.tobytes() == values.tobytes()


def test_dumps_keeps_vectors_on_one_line() -> None:
    text = dumps({"a": [[1.5, 2.0], [3.0, 4.0]], "b": {"c": None}})
    assert "[1.5, 2.0]" in text
    assert json.loads(text) == {"a": [[1.5, 2.0], [3.0, 4.0]], "b": {"c": None}}


def test_committed_fixture_passes_the_service_checks() -> None:
    manifest = check_bundle(TINY_BUNDLE)
    assert manifest["fingerprint"] == fingerprint_of(TINY_BUNDLE, manifest)
    assert manifest["dimension"] == 32
    assert manifest["max_tokens"] == 128
    assert manifest["prompts"] == {"query": "query: ", "document": "passage: "}
    assert manifest["onnx"] == {
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "output": "sentence_embedding",
    }
    assert manifest["calibration"]["corpus"]["name"] == "lee"
    assert sorted(p.name for p in TINY_BUNDLE.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "tokenizer.json",
    ]


def test_fixture_tokenizer_truncates_and_does_not_pad() -> None:
    data = json.loads((TINY_BUNDLE / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["padding"] is None
    assert data["truncation"]["max_length"] == 128
    assert data["truncation"]["direction"] == "Right"
    assert len(data["model"]["vocab"]) == 30522


def _copy_fixture(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(TINY_BUNDLE, bundle)
    return bundle


def test_changed_files_no_longer_match_the_fingerprint(tmp_path: Path) -> None:
    bundle = _copy_fixture(tmp_path)
    with (bundle / "tokenizer.json").open("a", encoding="utf-8") as handle:
        handle.write(" ")
    with pytest.raises(BundleError, match="fingerprint"):
        check_bundle(bundle, probe=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m.update(format="qembed.bundle/v0"),
            "at format: 'qembed.bundle/v1' was expected",
        ),
        (lambda m: m.update(dimension=12), "at dimension: 12 is not a multiple of 8"),
        (lambda m: m["calibration"].update(max=m["calibration"]["min"]), "max <= min"),
        (lambda m: m["calibration"].update(min=m["calibration"]["min"][:-1]), "values"),
        (lambda m: m.pop("training"), "'training' is a required property"),
        (lambda m: m["onnx"].update(inputs=["input_ids", "attention_mask"]), "ONNX inputs"),
    ],
)
def test_bad_manifests_are_refused(tmp_path: Path, change, message: str) -> None:
    # What JSON Schema can say, contracts/manifest.schema.json says (read_manifest refuses it);
    # lengths, ranges, the fingerprint and the graph are check_bundle's.
    bundle = _copy_fixture(tmp_path)
    manifest = read_manifest(bundle)
    change(manifest)
    if "dimension" in manifest and "calibration" in manifest:
        # Keep the fingerprint consistent so the check reaches the problem under test.
        with contextlib.suppress(KeyError, ValueError):
            manifest["fingerprint"] = fingerprint_of(bundle, manifest)
    write_json(bundle / "manifest.json", manifest)
    with pytest.raises(BundleError, match=message):
        check_bundle(bundle)


def test_a_manifest_that_breaks_the_contract_is_never_written(tmp_path: Path) -> None:
    bundle = _copy_fixture(tmp_path)
    manifest = read_manifest(bundle)
    manifest["pooling"] = "max"
    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match="at pooling: 'max' is not one of"):
        write_bundle_manifest(bundle, manifest)
    assert (bundle / "manifest.json").read_bytes() == before
