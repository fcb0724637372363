from pathlib import Path

import pytest

from qembed_worker.testing.fixture import write_fixture

from .conftest import TINY_BUNDLE

REGENERATE = "regenerate: python -m qembed_worker fixture --out test/fixtures/tiny-bundle"


@pytest.mark.cpu
def test_regenerating_the_fixture_gives_identical_files(tmp_path: Path) -> None:
    # The committed files were written on an AMD EPYC (Zen 5, AVX-512 + VNNI) and written again,
    # byte for byte, under qemu-x86_64 -cpu Haswell (AVX2 + FMA, no AVX-512): nothing in a
    # bundle may depend on the processor (docs/model-bundle.md, "Fingerprint").
    out = tmp_path / "tiny-bundle"
    summary = write_fixture(out)
    for name in ("model.onnx", "tokenizer.json", "manifest.json"):
        same = (out / name).read_bytes() == (TINY_BUNDLE / name).read_bytes()
        assert same, f"{name} differs from the committed fixture; {REGENERATE}"
    assert summary["fingerprint"] == "43d1a4c95d13373a"
    assert summary["bytes"]["model.onnx"] < 5_000_000
