"""First-stage codes of a transform, computed exactly as the service computes them."""

from __future__ import annotations

import numpy as np


def transform_bits(vectors: np.ndarray, mean: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The code bits ``W (x - mean) > 0`` of each vector, as booleans.

    Args:
        vectors: ``(n, d)`` float32 vectors.
        mean: ``(d,)`` float32 centre.
        weights: ``(b, d)`` float32 projection; row ``j`` gives bit ``j``.

    Returns:
        ``(n, b)`` booleans.
    """
    centred = np.asarray(vectors, dtype=np.float32) - np.asarray(mean, dtype=np.float32)
    return centred @ np.asarray(weights, dtype=np.float32).T > 0


def pack_codes(bits: np.ndarray) -> np.ndarray:
    """Pack code bits like ``numpy.packbits``: bit 0 is the most significant bit of byte 0.

    This is the service's ``ubinary`` layout, so a code computed here and one computed by the
    service from the same transform file are the same bytes.
    """
    return np.packbits(np.asarray(bits, dtype=bool), axis=-1)


def first_dims_transform(dimension: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Today's code as a transform: no centring, and the first ``bits`` unit vectors as rows."""
    return np.zeros(dimension, np.float32), np.eye(bits, dimension, dtype=np.float32)
