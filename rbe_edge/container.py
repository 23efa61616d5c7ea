"""model.rbe: the container of a bundle's bitplanes (docs/format.md specifies the bytes).

The writer lays out every tensor's scales and zero points, then plane 0 of
every tensor, plane 1 of every tensor, and so on, so any prefix that ends on
a plane boundary is a lower-precision model. The reader maps the file and
validates the header and the whole table before it touches tensor data; it
applies the same rules as the C reader in native/src/container.c.
"""
import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rbe_edge import _native
from rbe_edge.atomic_file import atomic_writer
from rbe_edge.errors import RbeError
from rbe_edge.packed_tensor import PackedTensor

MAGIC = b"RBEMODEL"
FORMAT_VERSION = 1
HEADER_BYTES = 64
PLANE_END_BYTES = 128
ENTRY_BYTES = 288
CHUNK_ALIGN = 64
MAX_PLANES = 16
MAX_TENSORS = 1 << 24
LAYOUT_CODES = {"kn": 0, "nk": 1, "vector": 2}
LAYOUT_NAMES = {code: name for name, code in LAYOUT_CODES.items()}

# Header: magic, version, tensor_count, max_bits, string_bytes, table_size,
# data_offset, file_size, table_crc, two reserved words; header_crc follows.
HEADER = struct.Struct("<8sIIIIQQQIII")
# Entry: name_offset, name_len, ndim, layout, shape[4], bits, params_crc,
# rows, cols, group_size, params_offset, plane_bytes, plane_offset[16], plane_crc[16].
ENTRY = struct.Struct("<IIII4QIIQQQQQ16Q16I")
assert HEADER.size == HEADER_BYTES - 4 and ENTRY.size == ENTRY_BYTES


class ContainerError(RbeError, ValueError):
    """A model.rbe file is malformed, truncated, corrupted or from a newer version.

    Attributes:
        path: the file.
        kind: "format", "version", "truncated" or "checksum", as the C reader's status.
    """

    def __init__(self, path, kind: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.kind = kind


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table."""

    name: str
    shape: Tuple[int, ...]
    layout: str
    bits: int
    rows: int
    cols: int
    group_size: int
    params_offset: int
    params_crc: int
    plane_bytes: int
    plane_offsets: Tuple[int, ...]
    plane_crcs: Tuple[int, ...]

    @property
    def params_bytes(self) -> int:
        return self.rows * (self.cols // self.group_size) * 8


def _align(offset: int) -> int:
    return (offset + CHUNK_ALIGN - 1) // CHUNK_ALIGN * CHUNK_ALIGN


def _exact_matrix_shape(shape: Tuple[int, ...], layout: str) -> Tuple[int, int]:
    # Python integers: a product that would overflow 64 bits must not wrap
    # around to the stored value.
    if layout == "kn":
        return shape[1], shape[0]
    if layout == "nk":
        return shape[0], math.prod(shape[1:])
    return 1, shape[0]


def _row_stride(cols: int) -> int:
    return (cols + 63) // 64 * 8


# ---- Writing ----


def write_container(path, tensors: Sequence[PackedTensor], planes: Optional[int] = None) -> int:
    """Write `tensors` to `path` atomically and return the bytes written.

    `planes` keeps only that many planes (a prefix of the full file, which
    readers accept as a lower-precision model); None writes them all. The
    file appears complete or not at all: it is written to a temporary file
    in the same folder, flushed to disk, then renamed over `path`.
    """
    path = Path(path)
    _check_unique_names(path, tensors)
    max_bits = max((t.bits for t in tensors), default=0)
    if planes is not None and not 1 <= planes <= max_bits:
        raise ValueError(f"{path}: planes={planes} is out of range; expected 1..{max_bits}")

    layout = _plan_layout(tensors, max_bits)
    header, table = _encode_table(tensors, layout, max_bits)
    limit = layout["file_size"] if planes is None else layout["plane_end"][planes - 1]

    with atomic_writer(path) as out:
        out.write(header)
        out.write(table)
        _write_chunks(out, tensors, layout, max_bits, limit)
    return limit


def _check_unique_names(path, tensors: Sequence[PackedTensor]) -> None:
    seen = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise ValueError(f"{path}: tensor name '{tensor.name}' appears twice")
        seen.add(tensor.name)


def _plan_layout(tensors: Sequence[PackedTensor], max_bits: int) -> Dict:
    """Assign every chunk its offset, in plane-major order."""
    names = [t.name.encode("utf-8") for t in tensors]
    table_size = PLANE_END_BYTES + len(tensors) * ENTRY_BYTES + sum(len(n) for n in names)
    data_offset = _align(HEADER_BYTES + table_size)

    cursor = data_offset
    params_offsets = []
    for tensor in tensors:
        params_offsets.append(cursor)
        cursor = _align(cursor + tensor.scale.nbytes + tensor.zero.nbytes)

    plane_offsets = [[0] * MAX_PLANES for _ in tensors]
    plane_end = [0] * MAX_PLANES
    for plane in range(max_bits):
        for index, tensor in enumerate(tensors):
            if plane < tensor.bits:
                plane_offsets[index][plane] = cursor
                cursor = _align(cursor + tensor.planes[plane].nbytes)
        plane_end[plane] = cursor

    return {
        "names": names,
        "table_size": table_size,
        "data_offset": data_offset,
        "params_offsets": params_offsets,
        "plane_offsets": plane_offsets,
        "plane_end": plane_end,
        "file_size": cursor if max_bits else data_offset,
    }


def _encode_table(tensors: Sequence[PackedTensor], layout: Dict, max_bits: int):
    entries = []
    name_offset = 0
    for index, tensor in enumerate(tensors):
        name = layout["names"][index]
        shape = list(tensor.shape) + [0] * (4 - len(tensor.shape))
        params_crc = _native.crc32c(_params_bytes(tensor))
        plane_crcs = [_native.crc32c(np.ascontiguousarray(p)) for p in tensor.planes]
        entries.append(ENTRY.pack(
            name_offset, len(name), len(tensor.shape), LAYOUT_CODES[tensor.layout], *shape,
            tensor.bits, params_crc, tensor.rows, tensor.cols, tensor.group_size,
            layout["params_offsets"][index], tensor.planes[0].nbytes,
            *layout["plane_offsets"][index], *(plane_crcs + [0] * (MAX_PLANES - tensor.bits)),
        ))
        name_offset += len(name)

    table = struct.pack("<16Q", *layout["plane_end"]) + b"".join(entries)
    table += b"".join(layout["names"])
    header = HEADER.pack(
        MAGIC, FORMAT_VERSION, len(tensors), max_bits, name_offset, layout["table_size"],
        layout["data_offset"], layout["file_size"], _native.crc32c(table), 0, 0,
    )
    header += struct.pack("<I", _native.crc32c(header))
    return header, table


def _params_bytes(tensor: PackedTensor) -> bytes:
    scale = np.ascontiguousarray(tensor.scale, dtype="<f4")
    zero = np.ascontiguousarray(tensor.zero, dtype="<f4")
    return scale.tobytes() + zero.tobytes()


def _write_chunks(out, tensors, layout: Dict, max_bits: int, limit: int) -> None:
    chunks: List[Tuple[int, object]] = []
    for index, tensor in enumerate(tensors):
        chunks.append((layout["params_offsets"][index], _params_bytes(tensor)))
    for plane in range(max_bits):
        for index, tensor in enumerate(tensors):
            if plane < tensor.bits:
                data = np.ascontiguousarray(tensor.planes[plane])
                chunks.append((layout["plane_offsets"][index][plane], data))

    for offset, data in chunks:
        if offset >= limit:
            break
        out.write(b"\0" * (offset - out.tell()))
        out.write(memoryview(data).cast("B"))
    out.write(b"\0" * (limit - out.tell()))


# ---- Reading ----


class Container:
    """A memory-mapped model.rbe, validated on open.

    Use as a context manager, or call close(). Tensor data is read from the
    mapping; `packed_tensor` copies one tensor's planes into the contiguous
    array a PackedTensor needs.
    """

    def __init__(self, path, data, mapping=None, *, check_crc: bool = True):
        self.path = str(path)
        self._data = data
        self._mapping = mapping
        self._check_crc = check_crc
        self._parse()

    @classmethod
    def open(cls, path) -> "Container":
        """Map and validate the container at `path`."""
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size == 0:
                    raise ContainerError(path, "truncated", "the file is empty; pack the model again")
                mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise ContainerError(path, "format", "the file does not exist") from None
        view = memoryview(mapping)
        try:
            return cls(path, view, mapping)
        except BaseException:
            view.release()
            mapping.close()
            raise

    @classmethod
    def from_bytes(cls, data, path="<bytes>", *, check_crc: bool = True) -> "Container":
        """Validate a container held in memory (used by tests and the fuzzer)."""
        return cls(path, memoryview(data).cast("B"), check_crc=check_crc)

    def close(self) -> None:
        if self._data is not None:
            self._data.release()
        self._data = None
        if self._mapping is not None:
            self._mapping.close()
            self._mapping = None

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- validation --

    def _fail(self, kind: str, message: str):
        raise ContainerError(self.path, kind, message)

    def _crc_ok(self, start: int, size: int, expected: int) -> bool:
        if not self._check_crc:
            return True
        return _native.crc32c(self._data[start:start + size]) == expected

    def _parse(self) -> None:
        self._parse_header()
        self._parse_plane_ends()
        self.tensors = self._parse_entries()
        self._check_chunks()
        self._count_planes()
        self._by_name = {entry.name: entry for entry in self.tensors}
        if len(self._by_name) != len(self.tensors):
            self._fail("format", "two tensors have the same name")

    def _parse_header(self) -> None:
        data = self._data
        if len(data) < HEADER_BYTES:
            self._fail("truncated", f"{len(data)} bytes is shorter than the 64-byte header")
        fields = HEADER.unpack_from(data, 0)
        if fields[0] != MAGIC:
            self._fail("format", "not an rbe_edge container (bad magic bytes)")
        self.version = fields[1]
        if self.version == 0:
            self._fail("format", "format version 0 is invalid")
        if self.version > FORMAT_VERSION:
            self._fail("version", f"format version {self.version} is newer than the supported "
                       f"version {FORMAT_VERSION}; upgrade rbe_edge")
        if not self._crc_ok(0, 60, struct.unpack_from("<I", data, 60)[0]):
            self._fail("checksum", "the header checksum does not match: the file is corrupted")

        (_, _, count, max_bits, strings, table_size, data_offset, file_size,
         table_crc, reserved1, reserved2) = fields
        if reserved1 or reserved2:
            self._fail("format", "reserved header fields are not zero")
        if count > MAX_TENSORS:
            self._fail("format", f"tensor count {count} exceeds {MAX_TENSORS}")
        if (max_bits != 0) if count == 0 else not 2 <= max_bits <= MAX_PLANES:
            self._fail("format", f"max_bits {max_bits} is invalid for {count} tensors")
        expected_table = PLANE_END_BYTES + count * ENTRY_BYTES + strings
        if table_size != expected_table or data_offset != _align(HEADER_BYTES + expected_table):
            self._fail("format", "the table size or data offset does not match the tensor count")
        if file_size < data_offset:
            self._fail("format", "the declared file size ends inside the table")
        if len(data) > file_size:
            self._fail("format", f"{len(data) - file_size} bytes follow the declared end of file")
        if len(data) < HEADER_BYTES + table_size:
            self._fail("truncated", "the file ends inside the tensor table")
        if not self._crc_ok(HEADER_BYTES, table_size, table_crc):
            self._fail("checksum", "the tensor table checksum does not match: the file is corrupted")

        self.tensor_count = count
        self.max_bits = max_bits
        self.file_size = file_size
        self.data_offset = data_offset
        self._string_bytes = strings

    def _parse_plane_ends(self) -> None:
        ends = struct.unpack_from("<16Q", self._data, HEADER_BYTES)
        previous = self.data_offset
        for plane, end in enumerate(ends):
            if plane >= self.max_bits:
                if end != 0:
                    self._fail("format", f"plane_end[{plane}] is set beyond max_bits")
                continue
            if end % CHUNK_ALIGN or end <= previous or end > self.file_size:
                self._fail("format", f"plane_end[{plane}] = {end} is out of order or out of range")
            previous = end
        if self.max_bits and ends[self.max_bits - 1] != self.file_size:
            self._fail("format", "the last plane does not end at the declared file size")
        if not self.max_bits and self.file_size != self.data_offset:
            self._fail("format", "a container without tensors declares data")
        self.plane_end = ends[:self.max_bits]

    def _parse_entries(self) -> List[TensorEntry]:
        base = HEADER_BYTES + PLANE_END_BYTES
        strings = base + self.tensor_count * ENTRY_BYTES
        entries = []
        for index in range(self.tensor_count):
            fields = ENTRY.unpack_from(self._data, base + index * ENTRY_BYTES)
            entries.append(self._make_entry(index, fields, strings))
        return entries

    def _make_entry(self, index: int, fields, strings: int) -> TensorEntry:
        name_offset, name_len, ndim, layout = fields[:4]
        shape_words = fields[4:8]
        bits, params_crc, rows, cols, group, params_offset, plane_bytes = fields[8:15]
        offsets, crcs = fields[15:31], fields[31:47]
        where = f"tensor table entry {index}"

        if name_len == 0 or name_offset + name_len > self._string_bytes:
            self._fail("format", f"{where}: the name lies outside the string area")
        try:
            name = bytes(self._data[strings + name_offset:strings + name_offset + name_len]).decode()
        except UnicodeDecodeError:
            self._fail("format", f"{where}: the name is not valid UTF-8")
        where = f"tensor '{name}'"
        if not 1 <= ndim <= 4 or layout not in LAYOUT_NAMES:
            self._fail("format", f"{where}: invalid ndim {ndim} or layout {layout}")
        layout_name = LAYOUT_NAMES[layout]
        if (layout_name == "vector") != (ndim == 1) or (layout_name == "kn" and ndim != 2):
            self._fail("format", f"{where}: layout {layout_name} does not fit {ndim} dimensions")
        if any((d < ndim) != (shape_words[d] != 0) for d in range(4)):
            self._fail("format", f"{where}: the shape has zero or extra dimensions")
        shape = tuple(shape_words[:ndim])
        if _exact_matrix_shape(shape, layout_name) != (rows, cols):
            self._fail("format", f"{where}: rows x cols {rows}x{cols} do not match shape {shape}")
        if not 2 <= bits <= self.max_bits:
            self._fail("format", f"{where}: bits {bits} is outside 2..{self.max_bits}")
        if group == 0 or cols % group:
            self._fail("format", f"{where}: group size {group} does not divide {cols} columns")
        if plane_bytes != rows * _row_stride(cols):
            self._fail("format", f"{where}: plane size {plane_bytes} does not match its shape")
        if any(offsets[p] or crcs[p] for p in range(bits, MAX_PLANES)):
            self._fail("format", f"{where}: plane offsets are set beyond its {bits} bits")

        return TensorEntry(name, shape, layout_name, bits, rows, cols, group, params_offset,
                           params_crc, plane_bytes, offsets[:bits], crcs[:bits])

    def _check_chunks(self) -> None:
        """Check alignment, range and order of every chunk: canonical order rules out overlap."""
        cursor = self.data_offset
        limit = self.plane_end[0] if self.max_bits else self.file_size
        for entry in self.tensors:
            cursor = self._place(entry.name, "scales", entry.params_offset,
                                 entry.params_bytes, limit, cursor)
        for plane in range(self.max_bits):
            for entry in self.tensors:
                if plane < entry.bits:
                    cursor = self._place(entry.name, f"plane {plane}", entry.plane_offsets[plane],
                                         entry.plane_bytes, self.plane_end[plane], cursor)
            cursor = self.plane_end[plane]

    def _place(self, name: str, chunk: str, offset: int, size: int, limit: int, cursor: int) -> int:
        if offset % CHUNK_ALIGN or offset < cursor or offset + size > limit:
            self._fail("format", f"tensor '{name}': {chunk} at offset {offset} is misaligned, "
                       "overlaps another chunk or lies out of range")
        return offset + size

    def _count_planes(self) -> None:
        size = len(self._data)
        self.planes_available = 0
        if not self.max_bits:
            if size != self.file_size:
                self._fail("truncated", "the file is shorter than declared")
            return
        planes = sum(1 for end in self.plane_end if end <= size)
        if planes == 0 or self.plane_end[planes - 1] != size:
            have = f"{planes} complete planes" if planes else "no complete plane"
            self._fail("truncated", f"the file is truncated at byte {size} of {self.file_size} "
                       f"({have}, and it does not end on a plane boundary); copy or pack it again")
        self.planes_available = planes

    # -- access --

    def names(self) -> List[str]:
        return [entry.name for entry in self.tensors]

    def entry(self, name: str) -> TensorEntry:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named '{name}'") from None

    def _planes_used(self, entry: TensorEntry, planes: Optional[int]) -> int:
        if planes is None:
            planes = self.planes_available
        if not 1 <= planes <= self.planes_available:
            raise ValueError(f"{self.path}: planes={planes} is out of range; the file holds "
                             f"1..{self.planes_available} planes")
        return min(planes, entry.bits)

    def _release(self, offset: int, size: int) -> None:
        """Drop the mapped pages of a chunk that was copied or checked.

        The pages are clean file pages that would be read again on demand,
        but until the kernel reclaims them they count in the resident size,
        and a copied tensor would then cost its planes twice.
        """
        if self._mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        start = -(-offset // page) * page
        end = (offset + size) // page * page
        if end > start:
            self._mapping.madvise(mmap.MADV_DONTNEED, start, end - start)

    def verify(self, planes: Optional[int] = None) -> None:
        """Check the CRC32C of every scale chunk and of the first `planes` planes."""
        for entry in self.tensors:
            if not self._crc_ok(entry.params_offset, entry.params_bytes, entry.params_crc):
                self._fail("checksum", f"tensor '{entry.name}': the scales and zero points "
                           "are corrupted (checksum mismatch)")
            for plane in range(self._planes_used(entry, planes)):
                offset = entry.plane_offsets[plane]
                valid = self._crc_ok(offset, entry.plane_bytes, entry.plane_crcs[plane])
                self._release(offset, entry.plane_bytes)
                if not valid:
                    self._fail("checksum", f"tensor '{entry.name}': plane {plane} is corrupted "
                               "(checksum mismatch)")

    def packed_tensor(self, name: str, planes: Optional[int] = None) -> PackedTensor:
        """Return tensor `name` with its first `planes` planes (all available by default).

        The PackedTensor keeps the tensor's B. Planes past the ones read are
        zero-filled, so pass the same `planes` to its decode(): decoding more
        planes than were read gives wrong values (never out-of-bounds reads).
        """
        entry = self.entry(name)
        used = self._planes_used(entry, planes)
        stride = _row_stride(entry.cols)
        stacked = np.zeros((entry.bits, entry.rows, stride), dtype=np.uint8)
        for plane in range(used):
            offset = entry.plane_offsets[plane]
            chunk = np.frombuffer(self._data, np.uint8, entry.plane_bytes, offset)
            stacked[plane] = chunk.reshape(entry.rows, stride)
            self._release(offset, entry.plane_bytes)

        groups = entry.cols // entry.group_size
        params = np.frombuffer(self._data, "<f4", 2 * entry.rows * groups, entry.params_offset)
        scale = params[:entry.rows * groups].reshape(entry.rows, groups).astype(np.float32)
        zero = params[entry.rows * groups:].reshape(entry.rows, groups).astype(np.float32)
        return PackedTensor(name=entry.name, shape=entry.shape, layout=entry.layout,
                            bits=entry.bits, group_size=entry.group_size, planes=stacked,
                            scale=scale, zero=zero)
