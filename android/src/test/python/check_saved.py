"""Check with the Python SDK a model.rbe that the JVM tests saved after training.

Usage: python check_saved.py FIXTURES_DIR

The JVM tests write saved/model.rbe and saved/<tensor index>.f32, their own
full-precision decode of every tensor. The Python reader must accept the
file (header, table and every CRC32C) and decode the same bits.
"""
import sys
from pathlib import Path

import numpy as np

from rbe_edge.container import Container


def main() -> int:
    saved = Path(sys.argv[1]) / "saved"
    with Container.open(saved / "model.rbe") as container:
        container.verify()
        for index, name in enumerate(container.names()):
            expected = np.fromfile(saved / f"{index}.f32", dtype="<f4")
            decoded = np.ascontiguousarray(container.packed_tensor(name).decode()).ravel()
            if expected.tobytes() != decoded.astype("<f4").tobytes():
                differing = int(np.count_nonzero(expected.view("<u4") != decoded.view("<u4")))
                print(f"{saved / 'model.rbe'}: tensor '{name}' decodes differently in Python "
                      f"and on the JVM ({differing} of {decoded.size} values)", file=sys.stderr)
                return 1
    print(f"check_saved: {saved / 'model.rbe'} verified and decoded equal in Python")
    return 0


if __name__ == "__main__":
    sys.exit(main())
