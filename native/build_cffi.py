"""cffi (API mode) build of the C core as the extension rbe_edge._native_lib.

The ABI is declared once, in native/include/rbe_edge.h: this script feeds
cffi the region between the RBE_CDEF markers of that header.
"""
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "native" / "include" / "rbe_edge.h"
BEGIN_MARK = "/* RBE_CDEF_BEGIN */"
END_MARK = "/* RBE_CDEF_END */"

# Matches native/Makefile: C99, and no fused multiply-add, because decoded
# values must equal the ONNX definition (a separate Sub and Mul) bit for bit.
COMPILE_ARGS = ["-std=c99", "-O2", "-ffp-contract=off"]


def read_cdef() -> str:
    text = HEADER.read_text(encoding="utf-8")
    start = text.index(BEGIN_MARK) + len(BEGIN_MARK)
    end = text.index(END_MARK)
    return text[start:end]


def native_sources() -> list:
    # setuptools expects source paths relative to the project root.
    sources = sorted((ROOT / "native" / "src").rglob("*.c"))
    return [str(path.relative_to(ROOT)) for path in sources]


ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "rbe_edge._native_lib",
    '#include "rbe_edge.h"',
    sources=native_sources(),
    include_dirs=["native/include", "native/src"],
    extra_compile_args=COMPILE_ARGS,
    libraries=["m"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
