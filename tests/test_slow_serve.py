"""`unsource serve` as a real process with the real model and the demo data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent / "unsource"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_served_demo_suggests_and_validates(tmp_path: Path, real_triage_dir: Path) -> None:
    env = {
        **os.environ,
        "UNSOURCE_DATA_DIR": str(tmp_path / "data"),
        "UNSOURCE_TRIAGE_MODEL_DIR": str(real_triage_dir),
        "HF_HUB_OFFLINE": "1",
    }
    load = subprocess.run(
        [BIN, "demo", "load", "--if-empty"], env=env, capture_output=True, text=True
    )
    assert load.returncode == 0, load.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [BIN, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.5)
        r = httpx.post(f"{base}/v1/suggest", json={"title": "How do I factory reset my hub?"})
        assert r.status_code == 200
        body = r.json()
        assert body["decision"] == "suggest"
        assert body["suggestions"][0]["thread_id"] == "lumio-001"
        pt = httpx.post(f"{base}/v1/suggest", json={"title": "Como reiniciar o hub de fábrica?"})
        assert pt.json()["suggestions"][0]["thread_id"] in {
            "lumio-047",
            "lumio-001",
            "lumio-055",
            "lumio-061",
        }
        bad = httpx.post(f"{base}/v1/suggest", json={"title": "x", "k": 500})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "k"
        off_topic = httpx.post(f"{base}/v1/suggest", json={"title": "Best pizza recipe with basil"})
        assert off_topic.json()["decision"] == "no_match"
        billing = httpx.post(
            f"{base}/v1/suggest", json={"title": "Fui cobrado duas vezes na assinatura Lumio Plus"}
        )
        assert billing.json()["decision"] == "staff" and billing.json()["suggestions"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
