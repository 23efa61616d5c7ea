"""quantize(): codes, scales and zero points, edge values and bad input."""
import numpy as np
import pytest

import rbe_edge
from reference import to_matrix

FLOAT32_MAX = np.finfo(np.float32).max


def max_error_bound(packed, w_matrix, planes_used):
    """Per-element bound on |w - decode(P)|.

    Before rounding, w / scale + zero lies within half a code of its code q,
    so within 2^(B-P) / 2 codes of the center of the 2^(B-P) codes that
    share q's top P bits (half a code at P == B). The float32 result adds
    one rounding of |w|.
    """
    codes = 2.0 ** (packed.bits - planes_used - 1) if planes_used < packed.bits else 0.5
    scale = np.repeat(packed.scale.astype(np.float64), packed.group_size, axis=1)
    return scale * codes + np.abs(w_matrix.astype(np.float64)) * 2.0**-23


@pytest.mark.parametrize(
    "shape, layout, group",
    [
        ((300,), None, None),
        ((64, 48), None, None),
        ((64, 48), "nk", 16),
        ((8, 3, 5), None, 5),
        ((16, 4, 3, 3), None, None),
        ((16, 4, 3, 3), None, 12),
    ],
)
def test_roundtrip_within_bound(shape, layout, group):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=8, group_size=group, name="w", layout=layout)

    decoded = packed.decode()
    assert decoded.shape == w.shape
    assert decoded.dtype == np.float32
    w_matrix = to_matrix(w, packed.layout)
    error = np.abs(to_matrix(decoded, packed.layout) - w_matrix)
    assert np.all(error <= max_error_bound(packed, w_matrix, 8))


def test_matmul_right_operand_layout():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((40, 24)).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=12)

    assert packed.layout == "kn"
    assert (packed.rows, packed.cols) == (24, 40)
    assert packed.planes.shape == (12, 24, 8)
    assert packed.scale.shape == (24, 1)
    x = rng.standard_normal((3, 40)).astype(np.float32)
    np.testing.assert_allclose(x @ packed.decode(), x @ w, rtol=0, atol=2e-2)


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 9, 13, 16])
def test_error_shrinks_with_planes(bits):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal((32, 130)).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=bits, layout="nk", group_size=26)

    previous = np.inf
    for p in range(1, bits + 1):
        decoded = packed.decode(p)
        error = np.abs(decoded - w).astype(np.float64)
        assert np.all(error <= max_error_bound(packed, w, p)), f"P={p} exceeds its bound"
        rms = float(np.sqrt(np.mean(error**2)))
        assert rms < previous, f"RMS error grew from P={p - 1} to P={p}: {previous} -> {rms}"
        previous = rms


def test_constant_and_zero_rows():
    w = np.zeros((4, 10), dtype=np.float32)
    w[0] = 3.5
    w[1] = -0.25
    w[3, 4] = 1.0
    packed = rbe_edge.quantize(w, bits=8, layout="nk")
    decoded = packed.decode()

    np.testing.assert_array_equal(decoded[0], np.full(10, 3.5, np.float32))
    np.testing.assert_array_equal(decoded[1], np.full(10, -0.25, np.float32))
    np.testing.assert_array_equal(decoded[2], np.zeros(10, np.float32))
    assert decoded[3, 4] == 1.0
    assert np.all(np.delete(decoded[3], 4) == 0.0)
    # Truncated decodes of an all-zero row stay negligibly small.
    assert np.all(np.abs(packed.decode(1)[2]) < 1e-30)


@pytest.mark.parametrize(
    "values",
    [
        [1e38, -1e38, 3e37, 0.0],
        [FLOAT32_MAX, -FLOAT32_MAX, 1.0, 0.0],
        [FLOAT32_MAX, FLOAT32_MAX, FLOAT32_MAX, FLOAT32_MAX],
        [1e-40, -3e-41, 2e-39, 0.0],
        [1e-30, 2e-30, -5e-31, 7e-31],
    ],
)
def test_extreme_magnitudes_decode_finite(values):
    w = np.array([values] * 3, dtype=np.float32)
    packed = rbe_edge.quantize(w, bits=8, layout="nk")

    for p in range(1, 9):
        decoded = packed.decode(p)
        assert np.all(np.isfinite(decoded)), f"P={p} decoded to a non-finite value"
    decoded = packed.decode().astype(np.float64)
    magnitude = float(np.max(np.abs(w.astype(np.float64))))
    # 8 bits over a range of at most 2 * magnitude: half a step plus the
    # clip at the float32 edge, and the normal-scale floor for tiny values.
    tolerance = max(2 * magnitude / 255 * 1.01, float(np.finfo(np.float32).tiny))
    assert np.max(np.abs(decoded - w.astype(np.float64))) <= tolerance


def test_float16_and_float64_inputs():
    rng = np.random.default_rng(2)
    w64 = rng.standard_normal((16, 16))
    for w in (w64.astype(np.float16), w64):
        packed = rbe_edge.quantize(w, bits=10)
        assert packed.decode().dtype == np.float32
        assert np.max(np.abs(packed.decode() - w.astype(np.float32))) < 0.01


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_raise(bad):
    w = np.ones((5, 7), dtype=np.float32)
    w[1, 2] = bad
    w[4, 6] = bad
    with pytest.raises(ValueError, match=r"tensor 'layer1\.weight' has 2 NaN or Inf values"):
        rbe_edge.quantize(w, name="layer1.weight")


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"bits": 1}, ValueError, "bits=1 is out of range"),
        ({"bits": 17}, ValueError, "bits=17 is out of range"),
        ({"bits": 8.0}, TypeError, "bits must be an int"),
        ({"group_size": 7}, ValueError, "group_size=7 must be positive and divide the 12"),
        ({"group_size": 0}, ValueError, "group_size=0"),
        ({"layout": "vector"}, ValueError, "does not fit a 2-D tensor"),
        ({"layout": "nchw"}, ValueError, "unknown layout"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    w = np.ones((12, 5), dtype=np.float32)
    with pytest.raises(error, match=pattern):
        rbe_edge.quantize(w, name="w", **kwargs)


@pytest.mark.parametrize(
    "w, error, pattern",
    [
        (np.ones((2, 2), dtype=np.int32), TypeError, "dtype int32"),
        ([[1.0, 2.0]], TypeError, "must be a numpy array"),
        (np.ones((2, 2, 2, 2, 2), dtype=np.float32), ValueError, "5 dimensions"),
        (np.ones((), dtype=np.float32), ValueError, "0 dimensions"),
        (np.ones((0, 3), dtype=np.float32), ValueError, "is empty"),
    ],
)
def test_bad_tensors_raise(w, error, pattern):
    with pytest.raises(error, match=pattern):
        rbe_edge.quantize(w, name="w")
