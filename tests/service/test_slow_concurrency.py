"""16 concurrent suggest clients against a real server while a bulk ingest runs: no errors,
no torn reads (every suggested thread is whole: its title and answer belong together), and
the latency they saw."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.server import serve_demo
from tests.support import auth

pytestmark = pytest.mark.slow
CLIENTS = 16


def _thread(i: int) -> dict[str, str]:
    # title and answer carry the same number: a torn row would mix two numbers
    return {"id": f"load-{i}", "title": f"Smart plug {i} schedule skips a day",
            "answer": f"Plug {i}: update the firmware and set the timezone again."}  # fmt: skip


def test_suggest_during_bulk_ingest(tmp_path: Path, real_triage_dir: Path) -> None:
    limits = json.dumps({"public": "100000/minute", "admin": "100000/minute"})
    with serve_demo(tmp_path, real_triage_dir, UNSOURCE_RATE_LIMITS=limits) as served:
        done = threading.Event()
        latencies: list[float] = []
        problems: list[str] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(base_url=served.base, headers=auth("public"), timeout=30) as c:
                while not done.is_set():
                    start = time.perf_counter()
                    r = c.post("/v1/suggest", json={"title": f"smart plug schedule skips {n}"})
                    elapsed = time.perf_counter() - start
                    with lock:
                        latencies.append(elapsed)
                        if r.status_code != 200:
                            problems.append(f"{r.status_code} {r.text[:200]}")
                            continue
                        for s in r.json()["suggestions"]:
                            if s["thread_id"].startswith("load-"):
                                i = s["thread_id"].split("-")[1]
                                if f"Smart plug {i} " not in s["title"] or (
                                    f"Plug {i}:" not in s["answer_excerpt"]
                                ):
                                    problems.append(f"torn: {s}")

        workers = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for w in workers:
            w.start()
        with httpx.Client(base_url=served.base, headers=auth("admin"), timeout=120) as admin:
            for start in range(0, 1000, 100):
                batch = [_thread(i) for i in range(start, start + 100)]
                r = admin.post("/v1/threads:bulk", json={"threads": batch})
                assert r.status_code == 200, r.text
            done.set()
            for w in workers:
                w.join()
            assert admin.get("/healthz").json()["threads"] == 66 + 1000
        assert problems == []
        ms = np.array(latencies) * 1000
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        print(f"\n{len(ms)} suggests, {CLIENTS} clients, during a 1000-thread bulk ingest: "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms")  # fmt: skip
        assert len(ms) >= CLIENTS
