"""The post-training baseline: PCA to ``b`` components, then an ITQ rotation.

Iterative quantization (Gong & Lazebnik, CVPR 2011) looks for the rotation ``R`` of the centred,
PCA-projected data ``V`` whose signs lose least: it alternates ``B = sign(V R)`` with the
orthogonal Procrustes step ``R = U S^T`` from the SVD ``V^T B = U Sigma S^T``. PCA alone puts most
variance in the first bits and almost none in the last (unbalanced bits rank badly); the rotation
spreads it, which is what makes the fitted code beat the first dimensions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

ITQ_ITERATIONS = 50


def principal_axes(centred: np.ndarray) -> np.ndarray:
    """The ``(d, d)`` principal axes of centred data as columns, by decreasing variance."""
    x = np.asarray(centred, dtype=np.float64)
    covariance = x.T @ x / max(len(x) - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    axes = vectors[:, order]
    # eigh's signs are arbitrary: fix each axis so its largest component is positive, so a fit
    # does not depend on the LAPACK build.
    flip = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    return axes * np.where(flip == 0, 1.0, flip)


def random_rotation(size: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded random orthogonal ``(size, size)`` matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    return q * np.sign(np.diag(r))


def fit_itq(
    centred: np.ndarray,
    axes: np.ndarray,
    bits: int,
    seed: int,
    *,
    iterations: int = ITQ_ITERATIONS,
    check: Callable[[], None] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Fit ITQ for one code length.

    Args:
        centred: ``(n, d)`` documents minus their mean.
        axes: Principal axes from :func:`principal_axes`.
        bits: Code length ``b`` (at most ``d``).
        seed: Seeds the starting rotation.
        iterations: Alternating steps.
        check: Called between iterations (raises to cancel).

    Returns:
        ``W_b = (P R)^T``, float32 ``(b, d)`` (bit ``j`` of ``x`` is ``W_b[j] . (x - mean) > 0``),
        and the quantization loss ``||sign(V R) - V R||^2 / n`` before and after.
    """
    # torch rather than numpy for the products: it keeps to the fit's thread count, where
    # numpy's BLAS would take every core the machine has.
    projection = torch.from_numpy(np.ascontiguousarray(axes[:, :bits], dtype=np.float32))
    v = torch.from_numpy(np.ascontiguousarray(centred, dtype=np.float32)) @ projection
    start = random_rotation(bits, np.random.default_rng(seed)).astype(np.float32)
    rotation = torch.from_numpy(start)
    losses = []
    for _ in range(iterations + 1):
        if check is not None:
            check()
        rotated = v @ rotation
        b = torch.where(rotated > 0, 1.0, -1.0)
        losses.append(float(torch.square(b - rotated).sum(dtype=torch.float64)) / len(v))
        if len(losses) > iterations:
            break
        u, _, vt = np.linalg.svd((v.T @ b).double().numpy())
        rotation = torch.from_numpy((u @ vt).astype(np.float32))
    weights = np.ascontiguousarray((projection @ rotation).T.numpy(), dtype=np.float32)
    return weights, losses[0], losses[-1]
