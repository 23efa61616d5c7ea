"""Dense-layer training wrappers: gemm_t, grad_sum_squares and dense_update against numpy."""
import numpy as np
import pytest

import rbe_edge
from rbe_edge.dense_train import dense_update, gemm_t, grad_sum_squares
from rbe_edge.update import new_accumulator, update_upper
from reference import codes_from_planes, decode_matrix

UNIT_ROUNDOFF = 2.0**-24


def packed_layer(rows, cols, bits=8, group=None, layout="nk", seed=0):
    rng = np.random.default_rng(seed)
    shape = (rows, cols) if layout == "nk" else (cols, rows)
    weight = rng.standard_normal(shape).astype(np.float32)
    return rbe_edge.quantize(weight, bits=bits, group_size=group, name="dense", layout=layout)


def exact_matrix(packed, planes):
    """The decoded (rows, cols) matrix in float64, without float32 rounding."""
    center_shift = 0.5 if planes < packed.bits else 0.0
    codes = codes_from_planes(packed, planes).astype(np.float64) - center_shift
    scale = np.repeat(packed.scale.astype(np.float64), packed.group_size, axis=1)
    zero = np.repeat(packed.zero.astype(np.float64), packed.group_size, axis=1)
    return (codes - zero) * scale


def sequential_float32(dy, matrix):
    """dx = dy @ matrix in float32, adding products in increasing row order."""
    dx = np.zeros((dy.shape[0], matrix.shape[1]), dtype=np.float32)
    for n in range(matrix.shape[0]):
        dx = dx + dy[:, n:n + 1] * matrix[n][None, :]
    return dx


def sequential_gradient(x, dy, grad_scale):
    """G = grad_scale * (dy.T @ x) in float32, adding batch products in order."""
    grad = np.zeros((dy.shape[1], x.shape[1]), dtype=np.float32)
    for m in range(x.shape[0]):
        grad = grad + dy[m][:, None] * x[m][None, :]
    return np.float32(grad_scale) * grad


@pytest.mark.parametrize("rows, cols, group", [(1, 1, None), (17, 65, None), (40, 300, 3),
                                               (33, 256, 16)])
@pytest.mark.parametrize("bits, planes", [(2, 1), (5, 5), (8, 3), (16, 16)])
@pytest.mark.parametrize("batch", [1, 9])
def test_gemm_t_within_float32_bound(rows, cols, group, bits, planes, batch):
    packed = packed_layer(rows, cols, bits, group, seed=rows + cols)
    dy = np.random.default_rng(batch).standard_normal((batch, rows)).astype(np.float32)

    dx = gemm_t(packed, dy, planes)

    exact = dy.astype(np.float64) @ exact_matrix(packed, planes)
    magnitude = np.abs(dy.astype(np.float64)) @ np.abs(exact_matrix(packed, planes))
    chain = rows + 1
    gamma = chain * UNIT_ROUNDOFF / (1 - chain * UNIT_ROUNDOFF)
    assert dx.dtype == np.float32
    assert dx.shape == (batch, cols)
    assert np.all(np.abs(dx - exact) <= gamma * magnitude + 1e-30)


@pytest.mark.parametrize("layout", ["nk", "kn"])
def test_gemm_t_equals_documented_order(layout):
    packed = packed_layer(21, 70, bits=8, group=None, layout=layout, seed=4)
    dy = np.random.default_rng(5).standard_normal((6, 21)).astype(np.float32)

    dx = gemm_t(packed, dy, 6)

    np.testing.assert_array_equal(dx, sequential_float32(dy, decode_matrix(packed, 6)))


def test_gemm_t_identical_across_kernels():
    packed = packed_layer(50, 333, bits=8, seed=7)
    dy = np.random.default_rng(8).standard_normal((5, 50)).astype(np.float32)
    reference = gemm_t(packed, dy, isa="scalar")

    for isa in rbe_edge.kernel_info()["available"]:
        for threads in (1, 2, 3):
            np.testing.assert_array_equal(gemm_t(packed, dy, threads=threads, isa=isa), reference,
                                          err_msg=f"isa {isa}, {threads} threads")


def test_gemm_t_one_dimensional_dy():
    packed = packed_layer(12, 30, seed=9)
    dy = np.random.default_rng(10).standard_normal(12)

    dx = gemm_t(packed, dy)

    assert dx.shape == (30,)
    np.testing.assert_array_equal(dx, gemm_t(packed, dy[None].astype(np.float32))[0])


def test_gemm_t_errors():
    packed = packed_layer(12, 30, bits=8)
    dy = np.ones((2, 12), np.float32)

    with pytest.raises(ValueError, match=r"needs dy of shape \[batch, 12\] or \[12\], got \(2, 30\)"):
        gemm_t(packed, np.ones((2, 30), np.float32))
    with pytest.raises(ValueError, match="needs dy of shape"):
        gemm_t(packed, np.ones((0, 12), np.float32))
    with pytest.raises(TypeError, match="dy must be float, got int64"):
        gemm_t(packed, np.ones((2, 12), np.int64))
    with pytest.raises(ValueError, match=r"planes=9 is out of range for tensor 'dense': expected 1..8"):
        gemm_t(packed, dy, 9)
    with pytest.raises(ValueError, match="threads must be from 1 to 256, got 0"):
        gemm_t(packed, dy, threads=0)
    with pytest.raises(ValueError, match="threads must be from 1 to 256, got 1000"):
        gemm_t(packed, dy, threads=1000)


@pytest.mark.parametrize("rows, cols, batch", [(1, 1, 1), (9, 40, 3), (30, 200, 32)])
def test_grad_sum_squares_matches_float64(rows, cols, batch):
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    dy = rng.standard_normal((batch, rows)).astype(np.float32)

    grad = dy.astype(np.float64).T @ x.astype(np.float64)
    expected = float(np.sum(grad * grad))
    magnitude = float(np.sum((np.abs(dy.astype(np.float64)).T @ np.abs(x.astype(np.float64))) ** 2))

    assert abs(grad_sum_squares(x, dy) - expected) <= 1e-12 * magnitude


def test_grad_sum_squares_errors():
    with pytest.raises(ValueError, match="x has 2 samples and dy 3"):
        grad_sum_squares(np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="dy must be a non-empty"):
        grad_sum_squares(np.ones((2, 4)), np.ones((2, 0)))
    with pytest.raises(TypeError, match="x must be float"):
        grad_sum_squares(np.ones((2, 4), np.int32), np.ones((2, 5)))


@pytest.mark.parametrize("layout", ["nk", "kn"])
@pytest.mark.parametrize("mode", ["accumulate", "sign"])
@pytest.mark.parametrize("rows, cols, group", [(3, 7, None), (17, 300, 3), (9, 64, 16)])
def test_dense_update_equals_full_update(layout, mode, rows, cols, group):
    rng = np.random.default_rng(rows * cols)
    x = rng.standard_normal((5, cols)).astype(np.float32)
    dy = (rng.standard_normal((5, rows)) * 0.1).astype(np.float32)
    grad = sequential_gradient(x, dy, 0.25)
    tensor_grad = grad.T if layout == "kn" else grad
    full = packed_layer(rows, cols, group=group, layout=layout, seed=1)
    tiled = packed_layer(rows, cols, group=group, layout=layout, seed=1)
    accum_full = new_accumulator(full) + np.int8(5)
    accum_tiled = accum_full.copy()
    accumulate = mode == "accumulate"

    update_upper(full, tensor_grad, upper_planes=4, learning_rate=5.0, mode=mode,
                 accum=accum_full if accumulate else None, seed=3, step=11, isa="scalar")
    dense_update(tiled, x, dy, upper_planes=4, learning_rate=5.0, mode=mode,
                 accum=accum_tiled if accumulate else None, grad_scale=0.25, seed=3, step=11)

    assert not np.array_equal(full.planes, packed_layer(rows, cols, group=group, layout=layout,
                                                        seed=1).planes), "no weight moved"
    np.testing.assert_array_equal(tiled.planes, full.planes)
    np.testing.assert_array_equal(accum_tiled, accum_full)


def test_dense_update_one_sample_vectors():
    packed = packed_layer(6, 10, seed=2)
    same = packed_layer(6, 10, seed=2)
    x = np.linspace(-1, 1, 10)
    dy = np.linspace(0.5, -0.5, 6)
    accum = new_accumulator(packed)
    accum_same = new_accumulator(same)

    dense_update(packed, x, dy, upper_planes=3, learning_rate=1.0, accum=accum)
    dense_update(same, x[None], dy[None], upper_planes=3, learning_rate=1.0, accum=accum_same)

    np.testing.assert_array_equal(packed.planes, same.planes)
    np.testing.assert_array_equal(accum, accum_same)


def test_dense_update_errors_leave_weights_untouched():
    packed = packed_layer(6, 10)
    planes = packed.planes.copy()
    accum = new_accumulator(packed)
    x = np.ones((2, 10), np.float32)
    dy = np.ones((2, 6), np.float32)
    common = dict(upper_planes=4, learning_rate=0.1, accum=accum)

    with pytest.raises(ValueError, match="unknown update mode 'adam'"):
        dense_update(packed, x, dy, mode="adam", **common)
    with pytest.raises(ValueError, match=r"needs x of shape \[batch, 10\] or \[10\]"):
        dense_update(packed, np.ones((2, 6)), dy, **common)
    with pytest.raises(ValueError, match="x has 2 samples and dy 3"):
        dense_update(packed, x, np.ones((3, 6)), **common)
    with pytest.raises(ValueError, match=r"needs an int8 accumulator of shape \(6, 10\)"):
        dense_update(packed, x, dy, upper_planes=4, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"upper_planes=9 is out of range .* expected 1..8"):
        dense_update(packed, x, dy, upper_planes=9, learning_rate=0.1, accum=accum)
    for bad_scale in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match=r"grad_scale \(.*\) must be positive and finite"):
            dense_update(packed, x, dy, grad_scale=bad_scale, **common)
    bad_dy = dy.copy()
    bad_dy[1, 3] = np.nan
    with pytest.raises(ValueError, match="x and dy finite"):
        dense_update(packed, x, bad_dy, **common)
    with pytest.raises(ValueError, match=r"2 \* max\(1, grad_scale\) \* batch \* max\|dy\|"):
        dense_update(packed, x * np.float32(1e19), dy * np.float32(1e19), **common)

    np.testing.assert_array_equal(packed.planes, planes)
    assert not accum.any()
