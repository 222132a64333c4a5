"""Security finding N4 (2026-12-04): a seed dir on shared storage was trusted. Its
manifest's ``file`` ("../triage/CURRENT") was copied over the replica's own triage
pointer, and triage's CURRENT could name any directory. Only an index file name in the
seed's own folder, and only a model version name, are followed now."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from index import seed
from index.errors import IndexMismatch
from index.vectors import layered as vectors
from index.vectors.faiss_index import FlatIndex
from triage.classifier import CURRENT, ModelError, TriageModel


def _seed(tmp_path: Path, name: str) -> Path:
    share = tmp_path / "share"
    (share / "seed").mkdir(parents=True)
    (share / "triage").mkdir()
    (share / "triage" / "CURRENT").write_text("/evil/model\n")
    manifest = {"file": name, "checksum": "0" * 64}
    (share / "seed" / vectors.MANIFEST_FILE).write_text(json.dumps(manifest))
    return share / "seed"


@pytest.mark.parametrize("name", ["../triage/CURRENT", "/etc/hostname", "vectors-1-x.faiss"])
def test_a_seed_naming_anything_but_an_index_file_is_not_adopted(tmp_path: Path, name: str) -> None:
    seed_dir = _seed(tmp_path, name)
    data = tmp_path / "replica" / "data"
    (data / "triage").mkdir(parents=True)
    (data / "triage" / "CURRENT").write_text("triage-20261204T000000-0123456789\n")
    assert seed.adopt(seed_dir, data / "index") is False
    assert (data / "triage" / "CURRENT").read_text() == "triage-20261204T000000-0123456789\n"
    assert not (data / "index" / vectors.MANIFEST_FILE).exists()
    with pytest.raises(seed.SeedError, match="not an index file name"):
        seed.publish(seed_dir, tmp_path / "elsewhere")


def test_a_saved_manifest_naming_another_path_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_bytes(b"not an index")
    manifest = vectors.Manifest("m", 4, 0, 0, "0" * 64, file="../elsewhere")
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / vectors.MANIFEST_FILE).write_text(json.dumps(asdict(manifest)))
    with pytest.raises(IndexMismatch, match="manifest names"):
        vectors.read(tmp_path / "index")


@pytest.mark.parametrize("pointer", ["/tmp/evil", "../elsewhere", "triage-x"])
def test_triage_current_must_name_a_version_of_its_root(tmp_path: Path, pointer: str) -> None:
    (tmp_path / CURRENT).write_text(pointer + "\n")
    with pytest.raises(ModelError, match="not a model version name"):
        TriageModel.load(tmp_path)


def _saved_index(directory: Path) -> str:
    index = FlatIndex(4)
    return vectors.save(index, directory, "m", 0, "store").file


@pytest.mark.parametrize("planted", ["manifest", "index"])
def test_publish_never_writes_through_a_planted_symlink(tmp_path: Path, planted: str) -> None:
    """Security N9: `index publish` opened ``NAME.tmp`` in the seed dir with open("wb"),
    following a symlink planted there onto any file the publisher may write."""
    name = _saved_index(tmp_path / "index")
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = vectors.MANIFEST_FILE if planted == "manifest" else name
    (seed_dir / (target + ".tmp")).symlink_to(victim)
    assert seed.publish(tmp_path / "index", seed_dir) == name
    assert victim.read_bytes() == b"precious"
    for published in (vectors.MANIFEST_FILE, name):
        assert not (seed_dir / published).is_symlink()
    assert vectors.read(seed_dir)[0].file == name
