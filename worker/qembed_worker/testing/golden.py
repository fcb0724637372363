"""Golden quantization vectors for the service's quantization tests.

Every expected code comes from ``sentence_transformers``' own ``quantize_embeddings`` with fixed
``ranges`` (a float32 array of shape ``(2, d)``: min row, max row); nothing here re-implements
the quantization. The service must reproduce each case exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qembed_worker import __version__
from qembed_worker.bundle.jsonio import dumps, f32_list

PRECISIONS = ("int8", "uint8", "binary", "ubinary")
SEED = 20251122


def _quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray) -> np.ndarray:
    from sentence_transformers.util.quantization import quantize_embeddings

    return np.asarray(quantize_embeddings(embeddings, precision=precision, ranges=ranges))


def _symmetric_ranges(rng: np.random.Generator, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    lo = -rng.uniform(0.02, 0.25, dimension)
    hi = rng.uniform(0.02, 0.25, dimension)
    return lo.astype(np.float32), hi.astype(np.float32)


def _inside(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, rows: int) -> np.ndarray:
    """Random float32 values strictly between ``lo`` and ``hi``."""
    u = rng.uniform(0.001, 0.999, (rows, lo.size))
    values = (lo.astype(np.float64) + u * (hi.astype(np.float64) - lo)).astype(np.float32)
    # float32 rounding may land on an end point; nudge those back inside.
    values = np.where(values <= lo, np.nextafter(lo, hi), values)
    return np.where(values >= hi, np.nextafter(hi, lo), values).astype(np.float32)


def _case(
    name: str,
    description: str,
    lo: np.ndarray,
    hi: np.ndarray,
    embeddings: np.ndarray,
    *,
    clamped: bool = False,
) -> dict[str, Any]:
    lo = lo.astype(np.float32)
    hi = hi.astype(np.float32)
    embeddings = embeddings.astype(np.float32)
    assert np.all(hi > lo), name
    assert np.all(np.isfinite(embeddings)), name
    ranges = np.stack([lo, hi]).astype(np.float32)
    if not clamped:
        assert np.all((embeddings >= lo) & (embeddings <= hi)), name
    case: dict[str, Any] = {
        "name": name,
        "description": description,
        "dimension": int(lo.size),
        "clamped": clamped,
        "min": f32_list(lo),
        "max": f32_list(hi),
        "embeddings": [f32_list(row) for row in embeddings],
    }
    for precision in PRECISIONS:
        codes = _quantize(embeddings, precision, ranges)
        case[precision] = [[int(v) for v in row] for row in codes]
    return case


def _bucket_edges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rows of values on, just below and just above the float32 bucket edges ``min + k*step``.

    ``step`` is computed in float32 exactly as ``quantize_embeddings`` does, so each edge is the
    place where float32 rounding decides between two codes.
    """
    step = (hi - lo) / np.float32(255)
    dimension = lo.size
    ks = np.array([1, 2, 3, 17, 63, 64, 100, 127, 128, 129, 191, 200, 253, 254, 255])
    rows = []
    for shift in range(4):
        k = ks[(np.arange(dimension) + shift * 5) % ks.size].astype(np.float32)
        edge = (lo + k * step).astype(np.float32)
        for row in (np.nextafter(edge, lo), edge, np.nextafter(edge, hi)):
            rows.append(np.clip(row, lo, hi))
    return np.array(rows, dtype=np.float32)


def generate() -> dict[str, Any]:
    """Build every golden case.

    Returns:
        ``{"generator": {...}, "cases": [...]}`` as described in the module docstring.
    """
    import sentence_transformers

    rng = np.random.default_rng(SEED)
    cases = []

    lo, hi = _symmetric_ranges(rng, 384)
    cases.append(
        _case(
            "random-384",
            "random embeddings strictly inside symmetric-ish ranges, d=384",
            lo,
            hi,
            _inside(rng, lo, hi, 8),
        )
    )

    # Ranges that sit entirely above or below zero on some dimensions.
    centers = rng.uniform(-0.3, 0.3, 16)
    widths = rng.uniform(0.01, 0.2, 16)
    lo16 = (centers - widths / 2).astype(np.float32)
    hi16 = (centers + widths / 2).astype(np.float32)
    cases.append(
        _case(
            "random-16-offset-ranges",
            "random embeddings strictly inside ranges that do not all straddle zero, d=16",
            lo16,
            hi16,
            _inside(rng, lo16, hi16, 6),
        )
    )

    lo, hi = _symmetric_ranges(rng, 16)
    alternate = np.where(np.arange(16) % 2 == 0, lo, hi)
    cases.append(
        _case(
            "range-endpoints",
            "values exactly equal to min, to max, and alternating min/max",
            lo,
            hi,
            np.stack([lo, hi, alternate, np.where(np.arange(16) % 2 == 0, hi, lo)]),
        )
    )

    lo, hi = _symmetric_ranges(rng, 16)
    cases.append(
        _case(
            "bucket-edges",
            "values on float32 bucket edges min + k*step and one ulp either side",
            lo,
            hi,
            _bucket_edges(lo, hi),
        )
    )

    # A range one ulp wide: the step is tiny but non-zero.
    narrow_lo = np.array([0.1, -0.1, 0.0, -0.5, 0.25, 1e-3, -1e-3, 0.7], dtype=np.float32)
    narrow_hi = np.nextafter(narrow_lo, np.float32(np.inf)).astype(np.float32)
    cases.append(
        _case(
            "one-ulp-ranges",
            "ranges whose max is the next float32 after min; values at min and at max. "
            "For min = 0 the float32 step (max - min) / 255 underflows to 0 and is replaced by 1",
            narrow_lo,
            narrow_hi,
            np.stack([narrow_lo, narrow_hi]),
        )
    )

    lo, hi = _symmetric_ranges(rng, 16)
    tiny = np.float32(1e-38)
    subnormal = np.nextafter(np.float32(0), np.float32(1))
    pattern = np.array([1, -1] * 8, dtype=np.float32)
    cases.append(
        _case(
            "binary-threshold",
            "zeros, -0.0, smallest subnormals and tiny +/- values: binary is x > 0",
            lo,
            hi,
            np.stack(
                [
                    np.zeros(16, dtype=np.float32),
                    np.full(16, -0.0, dtype=np.float32),
                    np.full(16, subnormal, dtype=np.float32),
                    np.full(16, -subnormal, dtype=np.float32),
                    pattern * tiny,
                    -pattern * tiny,
                    np.where(np.arange(16) % 3 == 0, np.float32(-0.0), subnormal * pattern),
                    pattern * np.float32(1e-7),
                ]
            ),
        )
    )

    for dimension in (12, 3):
        lo, hi = _symmetric_ranges(rng, dimension)
        cases.append(
            _case(
                f"odd-dimension-{dimension}",
                f"d={dimension}, not a multiple of 8: binary/ubinary pad the last byte with zeros",
                lo,
                hi,
                _inside(rng, lo, hi, 5),
            )
        )

    lo, hi = _symmetric_ranges(rng, 16)
    outside = rng.uniform(-0.6, 0.6, (6, 16)).astype(np.float32)
    outside[0] = hi * np.float32(1.5)
    outside[1] = lo * np.float32(1.5)
    outside[2] = np.nextafter(hi, np.float32(np.inf))
    outside[3] = np.nextafter(lo, np.float32(-np.inf))
    outside[4, ::2] = np.float32(3e38)
    outside[4, 1::2] = np.float32(-3e38)
    cases.append(
        _case(
            "clamped",
            "values outside the ranges: quantize_embeddings clips the bucket index to 0..255, so "
            "codes saturate at the range ends instead of wrapping.",
            lo,
            hi,
            outside,
            clamped=True,
        )
    )

    return {
        "generator": {
            "tool": f"qembed-worker {__version__} (python -m qembed_worker golden)",
            "function": "sentence_transformers.util.quantization.quantize_embeddings",
            "sentence_transformers": sentence_transformers.__version__,
            "numpy": np.__version__,
            "seed": SEED,
            "ranges": "float32 array of shape (2, dimension): [min; max]",
            "floats": "exact float32 values",
        },
        "cases": cases,
    }


def render() -> str:
    """Return the golden file's text exactly as :func:`write_golden` writes it."""
    return dumps(generate())


def write_golden(path: Path) -> dict[str, Any]:
    """Write the golden vectors to ``path``.

    Args:
        path: The JSON file to (over)write.

    Returns:
        A summary with the number of cases and the file size.
    """
    golden = generate()
    text = dumps(golden)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return {"path": str(path), "cases": len(golden["cases"]), "bytes": len(text.encode())}
