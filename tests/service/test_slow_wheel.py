"""The built wheel works outside the repository: every data file is package data.

The wheel is installed into a fresh virtual environment in a temporary folder, with
``--no-deps``; the environment finds the dependencies through a ``.pth`` line naming the
project venv's site-packages (appended to sys.path after the new environment's own, so the
installed wheel, not the source tree, provides ``index``, ``retrieval``, ``triage``,
``service`` and ``eval``). Everything runs from a folder outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import httpx
import pytest

from tests.server import serve_demo
from tests.support import KEYS, SHARED

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def test_wheel_installs_and_serves_outside_the_repository(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # no stale module may reach the wheel
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
          "-q", "-w", wheels], cwd=ROOT)  # fmt: skip
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # nor litter the tree (mypy reads it)
    (wheel,) = wheels.glob("unsource-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).strip())  # fmt: skip
    (site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = _run([py, "-c", "import triage, service; print(triage.__file__, service.__file__)"],
                 cwd=outside)  # fmt: skip
    assert str(ROOT) not in where and str(site) in where
    bin_ = env_dir / "bin" / "unsource"
    assert _run([bin_, "--version"], cwd=outside).strip() == "unsource 0.2.0"

    # train from small labelled slices plus the bundled seed and multilingual examples
    args: list[str | Path] = [bin_, "triage", "train", "--out", outside / "triage"]
    for name in ("banking77", "clinc150"):
        sample = outside / f"{name}.csv"
        lines = (SHARED / "data" / name / "train.csv").read_text().splitlines()
        sample.write_text("\n".join(lines[:1] + lines[1::20]) + "\n")
        args += ["--data", sample, "--routes", SHARED / "data" / name / "routes.csv"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "UNSOURCE_DATA_DIR": str(outside / "data")}
    _run(args, cwd=outside, env=env)
    triage_dir = outside / "triage"

    with serve_demo(outside, triage_dir, bin_path=bin_, cwd=outside) as served:
        headers = {"X-API-Key": KEYS["agent"]}
        r = httpx.post(f"{served.base}/v1/suggest", headers=headers, timeout=30,
                       json={"title": "How do I reset the hub to factory settings?"})  # fmt: skip
        assert r.status_code == 200 and r.json()["decision"] == "suggest", r.text
        assert r.json()["suggestions"][0]["thread_id"] in ("lumio-001", "lumio-047")
        stolen = "Someone stole my card and made purchases I didn't make"
        r = httpx.post(f"{served.base}/v1/triage", headers=headers, timeout=30,
                       json={"text": stolen})  # fmt: skip
        assert r.status_code == 200 and r.json()["route"] == "staff", r.text
        assert httpx.get(f"{served.base}/widget.js", timeout=10).status_code == 200
