"""int8 quantization runs NNCF in a child process (retrieval.encoders.openvino._quantize):
a child that dies (NNCF's native statistics pass once crashed with SIGSEGV) is run again,
and two failures are a clear error, not a dead replica. The child itself is exercised by
tests/retrieval/test_slow_encoders.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from index.errors import EncoderError
from retrieval.encoders import openvino


def _children(monkeypatch: pytest.MonkeyPatch, target: Path, codes: list[int]) -> list[list[str]]:
    """Stand-in children exiting with ``codes`` in turn; a 0 writes the int8 files."""
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        code = codes[len(calls) - 1]
        if code == 0:
            (target / "model-int8.bin").write_bytes(b"w")
            (target / "model-int8.xml").write_text("<net/>")
        return subprocess.CompletedProcess(argv, code, "", "Segmentation fault" if code else "")

    monkeypatch.setattr(openvino.subprocess, "run", run)
    return calls


def test_a_crashed_child_is_run_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _children(monkeypatch, tmp_path, [-11, 0])
    assert openvino._quantize(tmp_path, ["input_ids"], 128) == tmp_path / "model-int8.xml"
    assert len(calls) == 2 and "quantize_here" in calls[0][2]
    assert openvino._quantize(tmp_path, ["input_ids"], 128).exists() and len(calls) == 2  # reused


def test_two_failures_are_an_encoder_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _children(monkeypatch, tmp_path, [-11, 1])
    with pytest.raises(EncoderError, match="exit -11: Segmentation fault; exit 1"):
        openvino._quantize(tmp_path, ["input_ids"], 128)
    assert not (tmp_path / "model-int8.xml").exists()
