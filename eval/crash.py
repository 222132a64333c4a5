"""Crash harness: ingest threads through the HTTP API while the server is SIGKILLed.

    python -m eval.crash --seed 7                 # one seed, 10,000 threads
    python -m eval.crash --seed 100 --seeds 20    # seeds 100..119

Per seed, a fresh data dir and a real ``unsource serve`` process (hashing encoder, so the
run measures durability, not the model). Two writer threads send bulk creates, bulk
updates (a new version in the answer) and deletes; the driver SIGKILLs the server at
random moments, now and then while it is still starting (rebuilding its index), and
starts it again. After every restart, before writers resume:

- every acknowledged write is there: created threads exist and updates show their version
  (else ``lost`` or ``wrong_version``);
- nothing is there that no request wrote or that an acknowledged delete removed
  (``phantom``), and no id is stored twice (``duplicated``);
- a request that got no answer may or may not have landed, but only as a whole version;
- ``/readyz`` is 200 and ``/v1/admin/verify`` finds the index equal to the store: same
  keys, each once, and each of 200 sampled threads ranks first for its own stored vector.

After the last batch a final kill and restart; then every thread ever created and not
deleted must be there. Exit status 1 if any check failed in any seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from eval.crash_workload import Absent, Workload, thread_body
from eval.entry import run
from eval.launcher import BIN, ServerProcess
from triage.datasets import SEED_EXAMPLES

ROOT = Path(__file__).resolve().parents[1]
KEY = "uns_crash_harness_admin_key_0000000000"
KEY_SHA256 = hashlib.sha256(KEY.encode()).hexdigest()  # how keys are configured
VERSION = re.compile(r"version (\d+)$")


@dataclass
class SeedReport:
    seed: int
    threads: int
    kills: int = 0
    kills_during_startup: int = 0
    acknowledged: int = 0
    unanswered: int = 0
    server_errors: int = 0
    checks: int = 0
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    wrong_version: list[str] = field(default_factory=list)
    duplicated: int = 0
    index_failures: list[str] = field(default_factory=list)
    missing_at_end: int = 0
    stored_at_end: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.phantom
            or self.wrong_version
            or self.duplicated
            or self.index_failures
            or self.missing_at_end
        )


class Harness:
    def __init__(self, seed: int, threads: int, batch: int, workdir: Path, writers: int = 2):
        self.seed = seed
        self.rng = random.Random(seed * 7919 + 1)
        self.report = SeedReport(seed=seed, threads=threads)
        self.work = Workload(seed, threads, batch)
        self.writers = writers
        self.data = workdir / "data"
        self.server = ServerProcess(self._env(workdir), workdir / "server.log")
        self.up = threading.Event()
        self.epoch = 0
        self.cond = threading.Condition()
        self.inflight = 0
        self.stop_writers = False

    def _env(self, workdir: Path) -> dict[str, str]:
        triage = workdir / "triage"
        env = {
            **os.environ,
            "UNSOURCE_DATA_DIR": str(workdir / "data"),
            "UNSOURCE_MODEL": "hash:256",
            "UNSOURCE_TRIAGE_MODEL_DIR": str(triage),
            "UNSOURCE_API_KEYS": json.dumps(
                [
                    {
                        "name": "crash",
                        "role": "admin",
                        "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                    }
                ]
            ),
            "UNSOURCE_RATE_LIMITS": json.dumps({"admin": "1000000/minute"}),
            "UNSOURCE_ESCALATION_CHECK_SECONDS": "3600",
            "HF_HUB_OFFLINE": "1",
        }
        train = [str(BIN), "triage", "train", "--data", str(SEED_EXAMPLES), "--no-seed"]
        subprocess.run(
            [*train, "--encoder", "hash:128", "--out", str(triage)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        return env

    # -- writers -----------------------------------------------------------------------
    def _send(self, client: httpx.Client, kind: str, ids: list[str], rng: random.Random) -> int:
        base = self.server.base
        if kind == "delete":
            codes = [client.delete(f"{base}/v1/threads/{tid}").status_code for tid in ids]
            return max(codes)
        threads = [thread_body(t, self.work.target(kind, t) or 0, rng) for t in ids]
        return client.post(f"{base}/v1/threads:bulk", json={"threads": threads}).status_code

    def _writer(self, n: int) -> None:
        rng = random.Random(self.seed * 31 + n)
        with httpx.Client(headers={"X-API-Key": KEY}, timeout=60) as client:
            while not self.stop_writers:
                self.up.wait(0.2)
                with self.cond:
                    if not self.up.is_set():
                        continue
                    epoch = self.epoch
                    self.inflight += 1
                answered = True
                try:
                    op = self.work.next_op()
                    if op is None:
                        return
                    kind, ids = op
                    if kind == "wait":
                        time.sleep(0.01)
                        continue
                    answered = self._one(client, kind, ids, rng)
                finally:
                    with self.cond:
                        self.inflight -= 1
                        self.cond.notify_all()
                if not answered:
                    self._wait_past(epoch)

    def _wait_past(self, epoch: int) -> None:
        """Block until the driver has restarted the server (or stopped the run)."""
        with self.cond:
            self.cond.wait_for(lambda: self.epoch != epoch or self.stop_writers)

    def _one(self, client: httpx.Client, kind: str, ids: list[str], rng: random.Random) -> bool:
        try:
            code = self._send(client, kind, ids, rng)
        except httpx.TransportError:
            code = 0
        if code and code < 300:
            self.work.done(kind, ids, answered=True)
            self.report.acknowledged += 1
            return True
        if code >= 500:
            self.report.server_errors += 1
        self.report.unanswered += 1
        self.work.done(kind, ids, answered=False)
        if kind == "create":
            self.work.retry_creates(ids)
        return False

    # -- checks ------------------------------------------------------------------------
    def stored(self) -> dict[str, int]:
        conn = sqlite3.connect(f"file:{self.data / 'unsource.db'}?mode=ro", uri=True)
        try:
            dups = conn.execute("SELECT count(*) - count(DISTINCT id) FROM threads").fetchone()[0]
            self.report.duplicated += int(dups)
            out = {}
            for tid, answer in conn.execute("SELECT id, answer FROM threads"):
                m = VERSION.search(answer)
                out[tid] = int(m.group(1)) if m else -1
            return out
        finally:
            conn.close()

    def check(self) -> None:
        self.report.checks += 1
        found = self.stored()
        with self.work.lock:
            for tid, states in self.work.possible.items():
                actual = found.get(tid, Absent)
                if actual is Absent and Absent not in states:
                    self.report.lost.append(tid)
                elif actual is not Absent and states == {Absent}:
                    self.report.phantom.append(tid)  # never written, or deleted and back
                elif actual not in states:
                    self.report.wrong_version.append(tid)
                self.work.possible[tid] = {actual}
                if actual is not Absent:
                    self.work.version[tid] = actual
            self.report.phantom += [t for t in found if t not in self.work.possible]
            # creates to resend: only those that did not land; they stay busy (no update or
            # delete may race their resend)
            pending = [[t for t in b if t not in found] for b in self.work.pending]
            self.work.pending = [b for b in pending if b]
            self.work.busy = {t for b in self.work.pending for t in b}
        headers = {"X-API-Key": KEY}
        ready = httpx.get(f"{self.server.base}/readyz", timeout=30)
        verify = httpx.get(
            f"{self.server.base}/v1/admin/verify", params={"sample": 200}, headers=headers,
            timeout=120,
        )  # fmt: skip
        if ready.status_code != 200:
            self.report.index_failures.append(f"readyz {ready.status_code}: {ready.text}")
        if verify.status_code != 200 or not verify.json()["ok"]:
            self.report.index_failures.append(f"verify {verify.status_code}: {verify.text}")

    # -- driver ------------------------------------------------------------------------
    def restart(self) -> None:
        """Start the server; now and then kill it again while it starts up."""
        while True:
            self.server.spawn()
            if self.rng.random() < 0.15:
                time.sleep(self.rng.uniform(0.5, 3.0))
                if self.server.proc is not None and self.server.proc.poll() is None:
                    self.server.kill()
                    self.report.kills += 1
                    self.report.kills_during_startup += 1
                    continue
            self.server.wait_ready()
            return

    def pause_writers(self) -> None:
        self.up.clear()
        with self.cond:
            self.cond.wait_for(lambda: self.inflight == 0, timeout=120)

    def resume_writers(self) -> None:
        with self.cond:
            self.epoch += 1
            self.cond.notify_all()
        self.up.set()

    def run(self, mean_gap: float = 0.4) -> SeedReport:
        started = time.monotonic()
        self.restart()
        self.check()
        workers = [threading.Thread(target=self._writer, args=(n,)) for n in range(self.writers)]
        for w in workers:
            w.start()
        try:
            self.resume_writers()
            while not self.work.finished():
                time.sleep(self.rng.uniform(0.1, 2 * mean_gap))
                self.server.kill()
                self.report.kills += 1
                self.pause_writers()
                self.restart()
                self.check()
                self.resume_writers()
                if all(not w.is_alive() for w in workers):
                    break
        finally:
            self.stop_writers = True
            self.up.set()
            with self.cond:
                self.cond.notify_all()
            for w in workers:
                w.join()
        # one last crash after the last write, then everything created must be there
        self.server.kill()
        self.report.kills += 1
        self.restart()
        self.check()
        final = self.stored()
        expected = self.work.created - self.work.deleted
        self.report.missing_at_end = len(expected - set(final))
        self.report.stored_at_end = len(final)
        self.server.stop()
        self.report.seconds = round(time.monotonic() - started, 1)
        return self.report


def run_seeds(
    seeds: list[int],
    threads: int,
    batch: int,
    keep: Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[SeedReport]:
    reports = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix=f"crash-{seed}-") as tmp:
            work = Path(tmp) if keep is None else keep / f"seed-{seed}"
            if keep is not None:
                shutil.rmtree(work, ignore_errors=True)  # each seed starts from an empty store
            work.mkdir(parents=True, exist_ok=True)
            rep = Harness(seed, threads, batch, work).run()
            reports.append(rep)
            flag = "ok" if rep.ok else "FAILED"
            echo(
                f"seed {seed}: {flag}  kills {rep.kills} ({rep.kills_during_startup} at startup), "
                f"acked {rep.acknowledged}, unanswered {rep.unanswered}, 5xx {rep.server_errors}, "
                f"lost {len(rep.lost)}, phantom {len(rep.phantom)}, "
                f"wrong version {len(rep.wrong_version)}, duplicated {rep.duplicated}, "
                f"index failures {len(rep.index_failures)}, missing at end {rep.missing_at_end}, "
                f"stored {rep.stored_at_end}, {rep.seconds} s"
            )
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--seed", type=int, required=True, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed on")
    ap.add_argument("--threads", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--keep", type=Path, help="keep each seed's data dir and server log here")
    ap.add_argument("--out", type=Path, help="write the per-seed reports as JSON")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.threads < 1 or not 1 <= args.batch <= 1000:
        ap.error("--seeds and --threads must be ≥ 1 and --batch within 1..1000")
    seeds = list(range(args.seed, args.seed + args.seeds))
    reports = run_seeds(seeds, args.threads, args.batch, args.keep)
    if args.out:
        args.out.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in reports], indent=2))
    failed = [r.seed for r in reports if not r.ok]
    print(
        f"{len(reports) - len(failed)}/{len(reports)} seeds passed"
        + (f"; failed {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    run(main)
