"""Crash-safe file writes: a temporary file in the same folder, fsync, rename, fsync the folder."""
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Dict


def write_atomic(path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), 0o644)       # mkstemp creates the file private (0600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def remove_temporaries(folder, names) -> int:
    """Delete temporary files that an interrupted write_atomic of `names` left behind.

    Only for folders with one writer at a time (a bundle being saved).
    """
    removed = 0
    for name in names:
        for leftover in Path(folder).glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def fsync_folder(folder) -> None:
    # A rename is durable only once the folder entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_manifest(bundle_dir, manifest: Dict) -> None:
    write_atomic(Path(bundle_dir) / "manifest.json", json.dumps(manifest, indent=2).encode())


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
