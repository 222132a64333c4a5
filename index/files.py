"""Durable file writes and checksums, shared by the vector index, snapshots and the
triage model."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

# Tests set this to stop a write at a named point (as a crash would).
crash_hook: Callable[[str, Path], None] | None = None


def point(name: str, path: Path) -> None:
    if crash_hook is not None:
        crash_hook(name, path)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that a crash leaves the old file or the new one, never a mix."""
    replace_with(path, lambda fh: fh.write(data))


def replace_with(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Replace ``path`` with what ``write`` writes: a new temp file beside it (a random
    name created with O_EXCL, so a planted file or symlink is never written through and
    never blocks the write), fsync, rename over, fsync the directory. On an error the
    temp file is removed and ``path`` is left as it was."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            point("after_temp_write", path)
            fh.flush()
            point("before_fsync", path)
            os.fsync(fh.fileno())
        point("before_rename", path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def sha256_stream(fh: IO[bytes]) -> str:
    h = hashlib.sha256()
    while block := fh.read(1 << 20):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return sha256_stream(fh)
