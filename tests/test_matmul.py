"""PackedTensor.matmul: bit-serial products against float64 and across kernels."""
import numpy as np
import pytest

import rbe_edge
from reference import codes_from_planes

UNIT_ROUNDOFF = 2.0**-24


def lane_roundings(planes):
    """Roundings per lane and column in the documented order of rbe_gemm_f32.

    P = 1 adds x * 2^(B-1) where the bit is set, and P + 1 = 2 counts that
    add and the x sum. P >= 2 makes one fused multiply-add per column.
    """
    return 1 if planes >= 2 else planes + 1


def float32_bound(packed, x, planes):
    """Bound on |matmul - exact| for float32 accumulation, per output.

    The longest chain of roundings is n = ceil(G/16) * lane_roundings(P) + 8
    + groups (lane steps, the 4-level lane tree, offset, scale, group sum),
    so the error is at most 2 * gamma(n) * sum_g scale * (sum_k |x| (q_P -
    mid) + |center - zero| * sum_k |x|), gamma(n) = n u / (1 - n u),
    u = 2^-24, where mid = 2^(B-P-1) and center = mid - 1/2 (both 0 when
    P == B).
    """
    bits, group = packed.bits, packed.group_size
    midpoint = 2.0 ** (bits - planes - 1) if planes < bits else 0.0
    chain = -(-group // 16) * lane_roundings(planes) + 8 + packed.scale.shape[1]
    gamma = chain * UNIT_ROUNDOFF / (1 - chain * UNIT_ROUNDOFF)

    codes = codes_from_planes(packed, planes).astype(np.float64) - midpoint  # [N, K]
    abs_x = np.abs(x.astype(np.float64))                                     # [M, K]
    groups = packed.scale.shape[1]
    per_group_bits = (abs_x[:, None, :] * codes[None]).reshape(len(x), packed.rows, groups, group)
    per_group_x = abs_x.reshape(len(x), 1, groups, group).sum(axis=3)
    center_offset = midpoint - 0.5 if planes < bits else 0.0
    offset = np.abs(center_offset - packed.zero.astype(np.float64))
    magnitude = packed.scale * (per_group_bits.sum(axis=3) + offset[None] * per_group_x)
    return 2 * gamma * magnitude.sum(axis=2)


@pytest.mark.parametrize("k, n, group", [(1, 5, None), (17, 33, None), (64, 16, 16),
                                         (1000, 19, 40), (96, 7, 3)])
@pytest.mark.parametrize("bits", [2, 8, 13])
@pytest.mark.parametrize("batch", [1, 16])
def test_matmul_within_float32_bound(k, n, group, bits, batch):
    rng = np.random.default_rng(k + n + bits)
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((batch, k)).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=bits, group_size=group)

    for planes in range(1, bits + 1):
        exact = x.astype(np.float64) @ packed.decode(planes).astype(np.float64)
        result = packed.matmul(x, planes)
        error = np.abs(result.astype(np.float64) - exact)
        bound = float32_bound(packed, x, planes)
        assert result.shape == (batch, n)
        assert result.dtype == np.float32
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        assert np.all(error <= bound), (
            f"P={planes}: error {error[worst]:.3g} above bound {bound[worst]:.3g} at {worst}")


@pytest.mark.parametrize("k, n, group, bits", [(200, 77, 40, 8), (1040, 41, 80, 8),
                                               (300, 19, None, 11), (513, 9, None, 4)])
@pytest.mark.parametrize("batch", [1, 2, 5, 8, 33])
def test_matmul_same_bits_every_kernel(k, n, group, bits, batch):
    rng = np.random.default_rng(k + n + batch)
    packed = rbe_edge.quantize(rng.standard_normal((k, n)).astype(np.float32), bits=bits,
                               group_size=group)
    x = rng.standard_normal((batch, k)).astype(np.float32)
    available = rbe_edge.kernel_info()["available"]

    for planes in sorted({1, 2, bits // 2, bits}):
        reference = packed.matmul(x, planes, isa="scalar")
        for isa in available:
            for threads in (1, 2, 5):
                result = packed.matmul(x, planes, isa=isa, threads=threads)
                assert result.tobytes() == reference.tobytes(), (planes, isa, threads)


def test_matmul_vector_input():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((48, 10)).astype(np.float32)
    packed = rbe_edge.quantize(w)
    x = rng.standard_normal(48)

    result = packed.matmul(x, 6)
    assert result.shape == (10,)
    np.testing.assert_allclose(result, x @ packed.decode(6), rtol=1e-5, atol=1e-5)


def test_matmul_rejects_bad_input():
    packed = rbe_edge.quantize(np.ones((8, 4), np.float32), name="fc")
    with pytest.raises(ValueError, match=r"needs x of shape \[M, 8\] or \[8\], got \(3, 4\)"):
        packed.matmul(np.ones((3, 4), np.float32))
    with pytest.raises(TypeError, match="x must be float"):
        packed.matmul(np.ones(8, np.int32))
    with pytest.raises(ValueError, match="threads must be from 1 to 256, got 0"):
        packed.matmul(np.ones(8, np.float32), threads=0)
    with pytest.raises(ValueError, match="threads must be from 1 to 256, got 257"):
        packed.matmul(np.ones(8, np.float32), threads=257)
    with pytest.raises(ValueError, match="threads must be an int from 1 to 256, got 2.0"):
        packed.matmul(np.ones(8, np.float32), threads=2.0)
    with pytest.raises(ValueError, match="planes=9"):
        packed.matmul(np.ones(8, np.float32), 9)
    with pytest.raises(ValueError, match="x is empty"):
        packed.matmul(np.ones((0, 8), np.float32))

    conv = rbe_edge.quantize(np.ones((4, 2, 3, 3), np.float32), name="conv")
    with pytest.raises(ValueError, match="tensor 'conv' needs layout 'kn'"):
        conv.matmul(np.ones(18, np.float32))
