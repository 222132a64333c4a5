"""A replica's store file read into the operating system's page cache as it starts.

A suggest reads a handful of thread rows at random (the rescore's ten candidates, the
threads it shows, their signals). At a million threads the SQLite file is 6.3 GB (the
rows hold their vectors); straight after a start, or after an index build whose memory
peak emptied the page cache, most of those rows are on disk: ten of them took 0.77 ms
to read against 0.09 ms from the cache, and a replica's first 300 new questions ran at
p50 19.2 ms against 17.0 with the file cached (docs/deployment.md). PostgreSQL's
``pg_prewarm`` and InnoDB's buffer-pool load at start-up do the same for their servers.

The file is handed to the kernel's read-ahead (``posix_fadvise(WILLNEED)``) in 8 MiB
steps: no copy into the process, about 0.4 s of CPU and 3 s for 6.3 GB here. Only when
it fits well within the memory available (half of ``MemAvailable``): a file larger than
that would push out pages the replica needs more (its mapped vector index).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from threading import Event

STEP = 8 << 20  # bytes advised at a time: ``stop`` is checked between steps
SHARE = 0.5  # of the memory available, the most a file may take
MEMINFO = Path("/proc/meminfo")


def available_memory(meminfo: Path = MEMINFO) -> int | None:
    """``MemAvailable`` in bytes (Linux), None where it cannot be read."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


Advise = Callable[[int, int, int], None]  # (fd, offset, length)


def _will_need(fd: int, offset: int, length: int) -> None:
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)


def prewarm_file(
    path: Path,
    stop: Event,
    available: int | None = None,
    advise: Advise | None = None,
) -> int:
    """Ask the kernel to read ``path`` into the page cache, ``STEP`` bytes at a time,
    until done or ``stop`` is set; the bytes asked for. Nothing (0) where the file is
    missing, the platform has no ``posix_fadvise``, the memory available is unknown, or
    the file is more than ``SHARE`` of it."""
    if advise is None:
        if not hasattr(os, "posix_fadvise"):
            return 0
        advise = _will_need
    available = available_memory() if available is None else available
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if available is None or size > SHARE * available:
        return 0
    done = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in range(0, size, STEP):
            if stop.is_set():
                break
            advise(fd, offset, STEP)
            done = min(size, offset + STEP)
    finally:
        os.close(fd)
    return done
