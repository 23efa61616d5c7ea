"""Bundle files written during adaptation: manifests, leftovers of interrupted writes, digests."""
import hashlib
import json
from pathlib import Path
from typing import Dict

from rbe_edge.atomic_file import write_atomic


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


def write_manifest(bundle_dir, manifest: Dict) -> None:
    write_atomic(Path(bundle_dir) / "manifest.json", json.dumps(manifest, indent=2).encode())


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
