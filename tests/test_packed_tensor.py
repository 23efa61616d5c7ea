"""PackedTensor decode, refine and int8 decode against the numpy reference."""
import numpy as np
import pytest

import rbe_edge
from reference import codes_from_planes, decode_matrix, to_matrix

SHAPES = [
    ((1000,), None, 8),
    ((65, 3), None, None),
    ((9, 64), "nk", 4),
    ((7, 5, 9), None, 9),
    ((4, 2, 3, 3), None, None),
]


@pytest.mark.parametrize("shape, layout, group", SHAPES)
@pytest.mark.parametrize("bits", [2, 7, 8, 11, 16])
def test_decode_matches_reference(shape, layout, group, bits):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal(shape).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=bits, group_size=group, layout=layout)

    for p in range(1, bits + 1):
        decoded = to_matrix(packed.decode(p), packed.layout)
        expected = decode_matrix(packed, p)
        assert decoded.tobytes() == expected.tobytes(), f"P={p} differs from the reference"


@pytest.mark.parametrize("shape, layout, group", SHAPES)
@pytest.mark.parametrize("bits", [2, 8, 16])
def test_refine_equals_next_decode(shape, layout, group, bits):
    rng = np.random.default_rng(bits + 100)
    w = rng.standard_normal(shape).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=bits, group_size=group, layout=layout)

    buffer = packed.decode(1)
    for p in range(1, bits):
        result = packed.refine(buffer, p)
        assert result is buffer
        assert buffer.tobytes() == packed.decode(p + 1).tobytes(), f"refine {p}->{p + 1}"


def test_scalar_and_auto_kernels_agree():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((77, 301)).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=9, group_size=43, layout="nk")

    for p in range(1, 10):
        auto = packed.decode(p)
        scalar = packed.decode(p, isa="scalar")
        assert auto.tobytes() == scalar.tobytes(), f"P={p}"


def test_decode_int8_matches_reference():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((33, 70)).astype(np.float32)
    packed = rbe_edge.quantize(w, bits=8)

    for p in range(1, 9):
        codes = codes_from_planes(packed, p) - 128
        assert np.array_equal(to_matrix(packed.decode_int8(p), "kn"), codes.astype(np.int8))


def test_decode_int8_rejects_wide_codes():
    packed = rbe_edge.quantize(np.ones((4, 4), np.float32), bits=9)
    with pytest.raises(ValueError, match="needs bits <= 8"):
        packed.decode_int8()


@pytest.mark.parametrize("planes", [0, 9, -1])
def test_decode_rejects_plane_count(planes):
    packed = rbe_edge.quantize(np.ones((4, 4), np.float32), bits=8, name="fc")
    with pytest.raises(ValueError, match=f"planes={planes} is out of range for tensor 'fc'"):
        packed.decode(planes)


def test_refine_rejects_bad_buffers():
    packed = rbe_edge.quantize(np.ones((6, 4), np.float32), bits=8, name="fc", layout="nk")
    decoded = packed.decode(3)

    with pytest.raises(ValueError, match="expected 1..7"):
        packed.refine(decoded, 8)
    with pytest.raises(ValueError, match="does not match the tensor shape"):
        packed.refine(np.zeros((4, 6), np.float32), 3)
    with pytest.raises(TypeError, match="float32"):
        packed.refine(decoded.astype(np.float64), 3)
    with pytest.raises(ValueError, match="writable array with the memory layout"):
        packed.refine(np.asfortranarray(decoded), 3)


def test_decode_into_out_buffer():
    rng = np.random.default_rng(7)
    packed = rbe_edge.quantize(rng.standard_normal((50, 20)).astype(np.float32), name="fc")
    out = packed.decode(2)

    assert packed.decode(5, out=out) is out
    assert out.tobytes() == packed.decode(5).tobytes()
    with pytest.raises(ValueError, match="decode of tensor 'fc'.*memory layout"):
        packed.decode(5, out=np.zeros((50, 20), np.float32))


def test_unavailable_isa_raises_native_error():
    packed = rbe_edge.quantize(np.ones((4, 4), np.float32))
    available = rbe_edge.kernel_info()["available"]
    missing = [isa for isa in ("avx2", "avx512", "neon") if isa not in available]
    with pytest.raises(rbe_edge.NativeError, match="not available on this CPU") as error:
        packed.decode(isa=missing[0])
    assert f"this CPU runs {', '.join(available)}" in str(error.value)
    with pytest.raises(ValueError, match="unknown isa"):
        packed.decode(isa="sse9")


def test_kernel_info_names_kernels():
    info = rbe_edge.kernel_info()
    assert info["isa"] in info["available"]
    assert "scalar" in info["available"]
    for kernel in ("encode", "unpack", "dequant_f32", "refine_f32", "dequant_i8", "gemm_f32"):
        family = info[kernel].rsplit("_", 1)[1]
        assert family in info["available"], (kernel, info)
    assert info["gemm_f32"] == f"gemm_f32_{info['isa']}"
