"""model.rbe: Python writer, Python reader and C reader tested against each other."""
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import rbe_edge
from rbe_edge import _native
from rbe_edge.container import (HEADER_BYTES, Container, ContainerError, write_container)

ffi, lib = _native.ffi, _native.lib


def make_tensors(seed=0):
    rng = np.random.default_rng(seed)
    return [
        rbe_edge.quantize(rng.standard_normal((70, 33)).astype(np.float32), 8, name="mlp.w"),
        rbe_edge.quantize(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), 6, 9,
                          name="conv.w", layout="nk"),
        rbe_edge.quantize(rng.standard_normal(130).astype(np.float32), 4, 65, name="vec"),
        rbe_edge.quantize(rng.standard_normal((4, 64)).astype(np.float16), 8, 16,
                          name="név ünicode", layout="nk"),
    ]


@pytest.fixture
def container_file(tmp_path):
    tensors = make_tensors()
    path = tmp_path / "model.rbe"
    write_container(path, tensors)
    return path, tensors


def c_open(data: bytes):
    """Open `data` with the C reader; return (status, container, keep-alive buffer)."""
    buffer = ffi.from_buffer("uint8_t[]", data) if data else ffi.new("uint8_t[1]")
    container = ffi.new("rbe_container *")
    status = lib.rbe_container_open(container, buffer, len(data))
    return status, container, buffer


def c_tensors(container):
    tensors = []
    for index in range(container.tensor_count):
        info = ffi.new("rbe_container_tensor *")
        assert lib.rbe_container_tensor_info(container, index, info) == lib.RBE_OK
        name = ffi.unpack(info.name, info.name_len).decode()
        shape = tuple(info.shape[d] for d in range(info.ndim))
        offsets = tuple(info.plane_offset[p] for p in range(info.bits))
        tensors.append((name, shape, info.bits, info.group_size, info.params_offset, offsets))
    return tensors


def test_round_trip_every_plane_count(container_file):
    path, tensors = container_file
    with Container.open(path) as container:
        container.verify()
        assert container.names() == [t.name for t in tensors]
        for tensor in tensors:
            read = container.packed_tensor(tensor.name)
            assert np.array_equal(read.scale, tensor.scale)
            assert np.array_equal(read.zero, tensor.zero)
            for planes in range(1, tensor.bits + 1):
                assert np.array_equal(read.decode(planes), tensor.decode(planes)), \
                    f"{tensor.name} differs at P={planes}"


def test_c_reader_agrees_with_python(container_file):
    path, _ = container_file
    data = path.read_bytes()
    status, container, keep = c_open(data)
    assert status == lib.RBE_OK, _native.ffi.string(lib.rbe_status_message(status))
    assert lib.rbe_container_verify(container, container.planes_available) == lib.RBE_OK

    with Container.open(path) as py:
        assert (container.tensor_count, container.max_bits, container.planes_available) == \
            (py.tensor_count, py.max_bits, py.planes_available)
        expected = [(e.name, e.shape, e.bits, e.group_size, e.params_offset, e.plane_offsets)
                    for e in py.tensors]
    assert c_tensors(container) == expected


def test_c_decode_from_container_matches(container_file):
    path, tensors = container_file
    data = path.read_bytes()
    status, container, keep = c_open(data)
    assert status == lib.RBE_OK
    for index, tensor in enumerate(tensors):
        for planes in (1, tensor.bits):
            layout = ffi.new("rbe_layout *")
            pointers = ffi.new("const uint8_t *[16]")
            scale = ffi.new("const float **")
            zero = ffi.new("const float **")
            assert lib.rbe_container_tensor_data(container, index, planes, layout, pointers,
                                                 scale, zero) == lib.RBE_OK
            out = np.empty((tensor.rows, tensor.cols), np.float32)
            status = lib.rbe_decode_f32(layout, pointers, planes, scale[0], zero[0],
                                        ffi.from_buffer("float[]", out))
            assert status == lib.RBE_OK
            expected = tensor.decode(planes)
            expected = expected.T if tensor.layout == "kn" else expected.reshape(out.shape)
            assert np.array_equal(out, expected), f"{tensor.name} at P={planes}"


def test_every_table_byte_flip_detected(container_file):
    path, _ = container_file
    data = bytearray(path.read_bytes())
    with Container.open(path) as container:
        table_end = HEADER_BYTES + struct.unpack_from("<Q", data, 24)[0]
    assert table_end > HEADER_BYTES

    for offset in range(table_end):
        for bit in (0, 5):
            data[offset] ^= 1 << bit
            status, _, keep = c_open(bytes(data))
            assert status != lib.RBE_OK, f"C reader accepted a flip at byte {offset}"
            with pytest.raises(ContainerError):
                Container.from_bytes(bytes(data))
            data[offset] ^= 1 << bit


def test_random_plane_flips_detected(container_file):
    path, _ = container_file
    original = path.read_bytes()
    rng = np.random.default_rng(1)
    with Container.open(path) as container:
        chunks = [(e.plane_offsets[p], e.plane_bytes) for e in container.tensors
                  for p in range(e.bits)]
        chunks += [(e.params_offset, e.params_bytes) for e in container.tensors]

    for trial in range(200):
        start, size = chunks[rng.integers(len(chunks))]
        offset = start + int(rng.integers(size))
        data = bytearray(original)
        data[offset] ^= 1 << int(rng.integers(8))
        container = Container.from_bytes(bytes(data))
        with pytest.raises(ContainerError, match="checksum|corrupted"):
            container.verify()
        status, c_container, keep = c_open(bytes(data))
        assert status == lib.RBE_OK
        assert lib.rbe_container_verify(c_container, c_container.planes_available) == \
            lib.RBE_ERR_CHECKSUM, f"C reader missed a flip at byte {offset}"


def test_prefix_at_every_plane(tmp_path, container_file):
    path, tensors = container_file
    full = path.read_bytes()
    with Container.open(path) as container:
        plane_end = container.plane_end
    for planes in range(1, 9):
        prefix_path = tmp_path / f"prefix{planes}.rbe"
        written = write_container(prefix_path, tensors, planes=planes)
        assert written == plane_end[planes - 1]
        assert prefix_path.read_bytes() == full[:written]

        with Container.open(prefix_path) as prefix:
            assert prefix.planes_available == planes
            prefix.verify()
            for tensor in tensors:
                used = min(planes, tensor.bits)
                read = prefix.packed_tensor(tensor.name, planes)
                assert np.array_equal(read.decode(used), tensor.decode(used))
        status, container, keep = c_open(full[:written])
        assert status == lib.RBE_OK
        assert container.planes_available == planes


def test_truncation_off_plane_boundary_rejected(container_file):
    path, _ = container_file
    full = path.read_bytes()
    with Container.open(path) as container:
        boundaries = set(container.plane_end)
    for size in list(range(0, 700, 7)) + [len(full) - 1, len(full) - 64]:
        if size in boundaries:
            continue
        with pytest.raises(ContainerError, match="truncated|shorter|ends inside"):
            Container.from_bytes(full[:size])
        status, _, keep = c_open(full[:size])
        assert status == lib.RBE_ERR_TRUNCATED, f"size {size}: status {status}"


def test_newer_version_rejected(container_file):
    path, _ = container_file
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 8, 2)
    struct.pack_into("<I", data, 60, _native.crc32c(bytes(data[:60])))
    with pytest.raises(ContainerError, match="newer") as error:
        Container.from_bytes(bytes(data))
    assert error.value.kind == "version"
    assert c_open(bytes(data))[0] == lib.RBE_ERR_VERSION


def test_not_a_container(tmp_path):
    path = tmp_path / "model.rbe"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ContainerError, match="bad magic") as error:
        Container.open(path)
    assert str(path) in str(error.value)
    path.write_bytes(b"")
    with pytest.raises(ContainerError, match="empty"):
        Container.open(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, container_file):
    path, tensors = container_file
    before = path.read_bytes()
    broken = make_tensors()
    broken.append(broken[0])                                 # duplicate name
    with pytest.raises(ValueError, match="appears twice"):
        write_container(path, broken)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["model.rbe"]


def test_chunks_are_aligned(container_file):
    path, _ = container_file
    with Container.open(path) as container:
        for entry in container.tensors:
            assert entry.params_offset % 64 == 0
            assert all(offset % 64 == 0 for offset in entry.plane_offsets)


def test_empty_container(tmp_path):
    path = tmp_path / "empty.rbe"
    write_container(path, [])
    with Container.open(path) as container:
        assert container.tensor_count == 0
        assert container.planes_available == 0
    assert c_open(path.read_bytes())[0] == lib.RBE_OK


def test_fuzz_corpus_files_handled():
    """Seeds and past fuzzer findings: both readers accept or reject, never crash."""
    corpus = Path(__file__).resolve().parent.parent / "native" / "fuzz" / "corpus"
    for path in sorted(corpus.iterdir()):
        data = path.read_bytes()
        for check_crc in (True, False):
            try:
                Container.from_bytes(data, path.name, check_crc=check_crc)
            except ContainerError:
                pass
        c_open(data)


def test_shape_product_overflow_rejected():
    data = (Path(__file__).resolve().parent.parent / "native" / "fuzz" / "corpus"
            / "shape_overflow.rbe").read_bytes()
    with pytest.raises(ContainerError, match="do not match shape"):
        Container.from_bytes(data, check_crc=False)
