"""Upper-bitplane updates from Python: direction, invariants and errors."""
import numpy as np
import pytest

import rbe_edge
from rbe_edge.update import fold_lsb, new_accumulator, update_upper


def packed_pair(seed=0, shape=(64, 48), bits=8, group=None):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    grad = rng.standard_normal(shape).astype(np.float32)
    return rbe_edge.quantize(w, bits=bits, group_size=group, name="head"), grad


@pytest.mark.parametrize("mode", ["accumulate", "sign"])
def test_steps_move_against_gradient(mode):
    packed, grad = packed_pair()
    accum = new_accumulator(packed)
    before = packed.decode().copy()

    for step in range(5):
        update_upper(packed, grad, upper_planes=4, learning_rate=0.5, mode=mode,
                     accum=accum if mode == "accumulate" else None, step=step)
    moved = (packed.decode() - before).ravel()

    assert np.count_nonzero(moved) > moved.size // 4
    assert np.corrcoef(moved, -grad.ravel())[0, 1] > 0.5


def test_lower_planes_never_change_during_steps():
    packed, grad = packed_pair(bits=10, group=16)
    accum = new_accumulator(packed)
    lower = packed.planes[3:].copy()

    for step in range(20):
        update_upper(packed, grad * (step % 3 - 1), upper_planes=3, learning_rate=2.0,
                     accum=accum, step=step)
    np.testing.assert_array_equal(packed.planes[3:], lower)


def test_fold_keeps_remainder_below_one_code():
    packed, grad = packed_pair(seed=3)
    accum = new_accumulator(packed)
    for step in range(3):
        update_upper(packed, grad, upper_planes=4, learning_rate=0.02, accum=accum, step=step)
    before = packed.decode().copy()
    assert np.abs(accum).max() > 8, "the test needs accumulated remainders to fold"

    fold_lsb(packed, accum, upper_planes=4)

    # One upper step is 16 codes = 128 accumulator units: what remains is
    # below half a code, i.e. at most 4 units.
    assert np.abs(accum.astype(int)).max() <= 4
    assert np.corrcoef((packed.decode() - before).ravel(), -grad.ravel())[0, 1] > 0.5


def test_same_seed_same_result():
    results = []
    for _ in range(2):
        packed, grad = packed_pair(seed=9)
        accum = new_accumulator(packed)
        update_upper(packed, grad, upper_planes=4, learning_rate=0.3, accum=accum, seed=77, step=3)
        results.append((packed.planes.copy(), accum.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_update_rejects_bad_input_before_writing():
    packed, grad = packed_pair()
    accum = new_accumulator(packed)
    planes = packed.planes.copy()
    bad = grad.copy()
    bad[3, 4] = np.nan

    with pytest.raises(ValueError, match="every gradient finite"):
        update_upper(packed, bad, upper_planes=4, learning_rate=0.1, accum=accum)
    with pytest.raises(ValueError, match="learning rate"):
        update_upper(packed, grad, upper_planes=4, learning_rate=0.0, accum=accum)
    with pytest.raises(ValueError, match=r"upper_planes=9 is out of range for tensor 'head'"):
        update_upper(packed, grad, upper_planes=9, learning_rate=0.1, accum=accum)
    with pytest.raises(ValueError, match="expected the tensor shape"):
        update_upper(packed, grad.T, upper_planes=4, learning_rate=0.1, accum=accum)
    with pytest.raises(ValueError, match="int8 accumulator of shape"):
        update_upper(packed, grad, upper_planes=4, learning_rate=0.1, accum=None)
    with pytest.raises(ValueError, match="unknown update mode"):
        update_upper(packed, grad, upper_planes=4, learning_rate=0.1, mode="adam")
    np.testing.assert_array_equal(packed.planes, planes)
