"""A throwaway PostgreSQL server for tests: initdb in a temp dir, on a free loopback port.

Uses the Debian ``postgresql`` package's binaries (``make test`` installs it). PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from eval.launcher import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return path


def _version(path: str) -> int:
    try:
        return int(Path(path).parts[4])
    except (IndexError, ValueError):
        return 0


def _as_owner(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a fresh server's ``postgres`` database; stop and delete it after."""
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="unsource-pg-"))
    data, log = root / "data", root / "server.log"
    if user:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = free_port()
    try:
        subprocess.run(
            _as_owner([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--locale=C.UTF-8"], user),
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            _as_owner([_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                       "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], user),
            check=True, capture_output=True,
        )  # fmt: skip
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait(url)
        yield url
    finally:
        subprocess.run(
            _as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user),
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_names = itertools.count()


def fresh_database(server_url: str) -> str:
    """Create an empty database on the server; returns its URL."""
    name = f"unsource_test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
