"""Crash-safe file replacement: a temporary file in the same folder, fsync, rename, fsync the folder."""
import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[BinaryIO]:
    """Yield a binary file whose contents replace `path` when the block ends.

    A crash or an exception at any point leaves either the old file or the
    new one at `path`, never a mix. An exception also removes the temporary
    file.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), 0o644)       # mkstemp creates the file private (0600)
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_atomic(path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file."""
    with atomic_writer(path) as out:
        out.write(data)


def fsync_folder(folder) -> None:
    # A rename is durable only once the folder entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
