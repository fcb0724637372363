import json

import numpy as np

from qembed_worker.testing.golden import PRECISIONS, render

from .conftest import GOLDEN


def test_committed_golden_file_is_what_the_command_writes() -> None:
    same = GOLDEN.read_text(encoding="utf-8") == render()
    assert same, (
        "regenerate: python -m qembed_worker golden --out test/fixtures/quantization-golden.json"
    )


def test_golden_cases_cover_the_edge_cases() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    names = {case["name"] for case in golden["cases"]}
    assert {"random-384", "range-endpoints", "bucket-edges", "binary-threshold", "clamped"} <= names
    dims = {case["dimension"] for case in golden["cases"]}
    assert 384 in dims
    assert any(d % 8 for d in dims)
    for case in golden["cases"]:
        rows = len(case["embeddings"])
        for precision in PRECISIONS:
            assert len(case[precision]) == rows
        assert len(case["binary"][0]) == (case["dimension"] + 7) // 8
        lo = np.array(case["min"], dtype=np.float32)
        hi = np.array(case["max"], dtype=np.float32)
        x = np.array(case["embeddings"], dtype=np.float32)
        inside = bool(np.all((x >= lo) & (x <= hi)))
        assert inside != case["clamped"], case["name"]
