import json
import math

import numpy as np
import pytest
import torch

from qembed_worker.quant.codes import (
    Int8Ranges,
    code_bits,
    dequantize_int8,
    fake_binary,
    fake_quantize,
    int8_codes,
    is_precision,
    pack_binary,
)

from .conftest import GOLDEN

CASES = json.loads(GOLDEN.read_text(encoding="utf-8"))["cases"]


def _case_arrays(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(case["embeddings"], dtype=np.float32),
        np.asarray(case["min"], dtype=np.float32),
        np.asarray(case["max"], dtype=np.float32),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_numpy_int8_codes_are_the_service_bytes(case: dict) -> None:
    x, lo, hi = _case_arrays(case)
    assert int8_codes(x, lo, hi).tolist() == case["int8"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fake_quant_int8_uses_the_service_buckets(case: dict) -> None:
    x, lo, hi = _case_arrays(case)
    ranges = Int8Ranges(lo, hi)
    assert ranges.codes(torch.from_numpy(x)).tolist() == case["int8"]
    # The fake-quantized value is the centre of that bucket, as the service rescoring reads it.
    centres = fake_quantize(torch.from_numpy(x), "int8", ranges).numpy()
    expected = dequantize_int8(np.asarray(case["int8"], dtype=np.int8), lo, hi)
    np.testing.assert_array_equal(centres, expected)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_binary_bits_are_the_service_bits(case: dict) -> None:
    x, _, _ = _case_arrays(case)
    assert pack_binary(x).tolist() == case["ubinary"]
    if case["dimension"] % 8 == 0:
        codes = fake_binary(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(np.packbits(codes > 0, axis=-1), case["ubinary"])


def test_int8_ranges_are_frozen_not_per_batch() -> None:
    lo, hi = np.full(4, -1, np.float32), np.full(4, 1, np.float32)
    ranges = Int8Ranges(lo, hi)
    small = torch.tensor([[0.01, -0.01, 0.02, 0.0]])
    # A per-batch range would spread this batch over all 256 buckets; frozen ranges keep it
    # in the middle buckets, as the service would.
    assert set(ranges.codes(small).flatten().tolist()) <= {-2, -1, 0, 1, 2}
    assert not any(p.requires_grad for p in ranges.parameters())


def test_int8_straight_through_gradient_is_identity() -> None:
    ranges = Int8Ranges(np.full(3, -1, np.float32), np.full(3, 1, np.float32))
    x = torch.tensor([[0.1, -0.5, 0.9]], requires_grad=True)
    (fake_quantize(x, "int8", ranges) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [[1.0, 2.0, 3.0]]


def test_binary_identity_ste_passes_the_gradient() -> None:
    x = torch.tensor([[0.3, -0.2, 0.0, 5.0]], requires_grad=True)
    codes = fake_binary(x, "identity")
    assert codes.tolist() == [[0.5, -0.5, -0.5, 0.5]]  # x > 0 -> +1, else -1; unit norm
    (codes * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_binary_clipped_ste_zeroes_far_values() -> None:
    d = 4
    unit = 1 / math.sqrt(d)  # a unit vector's typical component
    x = torch.tensor([[0.5 * unit, -0.9 * unit, 1.5 * unit, -3 * unit]], requires_grad=True)
    fake_binary(x, "clipped", clip=1.0).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [[1.0, 1.0, 0.0, 0.0]]


@pytest.mark.parametrize("precision", ["float32", "int8", "binary"])
def test_cached_tensors_are_never_quantized_in_place(precision: str) -> None:
    cache = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32) * 0.1
    snapshot = cache.copy()
    tensor = torch.from_numpy(cache)  # shares memory with the cache array
    version = tensor._version
    ranges = Int8Ranges(np.full(8, -0.2, np.float32), np.full(8, 0.2, np.float32))
    out = fake_quantize(tensor, precision, ranges)
    if precision != "float32":
        assert out.data_ptr() != tensor.data_ptr()
        assert not torch.equal(out, tensor)
    assert tensor._version == version
    np.testing.assert_array_equal(cache, snapshot)


def test_unknown_precision_and_ste_are_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        fake_quantize(torch.zeros(1, 8), "int4")
    with pytest.raises(ValueError, match="straight-through"):
        fake_binary(torch.zeros(1, 8), "tanh")
    with pytest.raises(ValueError, match="ranges"):
        fake_quantize(torch.zeros(1, 8), "int8")


def test_a_compact_code_is_the_unit_sign_vector_of_the_first_dimensions() -> None:
    x = torch.linspace(-1, 1, 16).flip(0).reshape(1, 16).clone().requires_grad_(True)
    code = fake_quantize(x, "binary@8")
    assert code.shape == (1, 8)
    torch.testing.assert_close(code, torch.where(x[:, :8] > 0, 1.0, -1.0) / math.sqrt(8))
    code.sum().backward()  # straight through to the first eight dimensions only
    assert x.grad is not None and x.grad[0, 8:].abs().sum() == 0 and x.grad[0, :8].abs().sum() > 0


@pytest.mark.parametrize("precision", ["binary@0", "binary@12", "binary@x", "binary@-8"])
def test_a_code_length_is_a_positive_multiple_of_8(precision: str) -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        code_bits(precision)
    assert not is_precision(precision)


def test_code_lengths_are_read_from_their_precision() -> None:
    assert code_bits("binary@128") == 128
    assert code_bits("binary") is None and code_bits("int8") is None
    assert is_precision("binary@64") and is_precision("float32")
