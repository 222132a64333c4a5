"""Seeding a new replica's vector index from a published copy, so that it starts by
loading an index and catching up through the change feed instead of building one.

    publish(index_dir, seed_dir)   copy a saved index (manifest + the file it names) to
                                   seed_dir, e.g. shared storage; run it on any replica
    adopt(seed_dir, index_dir)     a replica with no saved index of its own copies the seed
                                   in before it opens (Corpus.open)

Both copy the index file first and rename the manifest over last, so a reader of the
target sees the old pair or the new pair, never a manifest naming a missing or partial
file. Whether a seed is usable (same store, same embedding space, not newer than the
store, checksum) is decided by ``vectors.load`` as for a replica's own saved index; an
unusable seed costs a rebuild, as no seed would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from index import files
from index.errors import UnsourceError
from index.vectors.layered import INDEX_FILE, MANIFEST_FILE


class SeedError(UnsourceError):
    """There is no saved index to publish, or the target cannot be written."""


def _copy_pair(source: Path, target: Path) -> str:
    """Copy the manifest in ``source`` and the file it names into ``target``; returns the
    file name. The file is renamed into place (fsynced) before the manifest."""
    try:
        manifest = (source / MANIFEST_FILE).read_bytes()
        name = str(json.loads(manifest)["file"])
    except (OSError, ValueError, KeyError) as exc:
        raise SeedError(f"no saved index in {source}: {exc}") from exc
    if not INDEX_FILE.fullmatch(name):  # "../triage/CURRENT", "/etc/passwd": refused
        raise SeedError(f"{source / MANIFEST_FILE}: 'file' is not an index file name: {name!r}")
    if (source / name).is_symlink():
        raise SeedError(f"{source / name}: a symbolic link, not an index file")
    target.mkdir(parents=True, exist_ok=True)
    with open(source / name, "rb") as src:  # temp files of random names: nothing planted
        files.replace_with(target / name, lambda dst: shutil.copyfileobj(src, dst, 1 << 20))
    files.write_atomic(target / MANIFEST_FILE, manifest)
    for stale in target.iterdir():
        if stale.name not in (name, MANIFEST_FILE) and stale.suffix == ".faiss":
            stale.unlink(missing_ok=True)
    return name


def publish(index_dir: Path, seed_dir: Path) -> str:
    """Copy this data dir's saved index to ``seed_dir``; returns the index file's name."""
    try:
        return _copy_pair(index_dir, seed_dir)
    except OSError as exc:
        raise SeedError(f"cannot publish to {seed_dir}: {exc}") from exc


def adopt(seed_dir: Path, index_dir: Path) -> bool:
    """Copy the seed into ``index_dir`` if that holds no saved index; True if copied."""
    if (index_dir / MANIFEST_FILE).exists() or not (seed_dir / MANIFEST_FILE).exists():
        return False
    try:
        _copy_pair(seed_dir, index_dir)
    except (OSError, SeedError):
        return False
    return True
