"""atheris fuzz target for the Python container reader (run by `make fuzz`).

Checksum comparisons are switched off so mutated inputs reach the parser.
The reader may raise ContainerError, and decoding a fuzzed tensor may raise
NativeError for invalid scales or zero points; any other exception is a bug.

Usage: python tests/fuzz/fuzz_container.py -max_total_time=60 CORPUS_DIR SEED_DIR
"""
import sys

import atheris

with atheris.instrument_imports():
    from rbe_edge.container import Container, ContainerError
    from rbe_edge.errors import NativeError


def test_one_input(data: bytes) -> None:
    try:
        container = Container.from_bytes(data, check_crc=False)
    except ContainerError:
        return
    container.verify()
    for entry in container.tensors[:16]:
        if entry.rows * entry.cols > 4096:
            continue
        packed = container.packed_tensor(entry.name)
        try:
            packed.decode(min(container.planes_available, entry.bits))
        except NativeError:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
