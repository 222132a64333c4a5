"""Index files survive crashes at every point of a save; snapshots round-trip, and a
changed snapshot is refused before anything is written."""

from __future__ import annotations

import multiprocessing
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from index import files, snapshot
from index.errors import IndexMismatch
from index.snapshot import SnapshotError
from index.vectors import layered as vectors
from service.cli.root import app
from service.config import Settings
from service.runtime import Engine, build_engine
from tests.support import SAMPLE, CountingEncoder, make_thread

DIM = 8


def _index(pks: list[int]) -> vectors.FlatIndex:
    idx = vectors.FlatIndex(DIM)
    rng = np.random.default_rng(len(pks))
    vecs = rng.normal(size=(len(pks), DIM)).astype(np.float32)
    idx.add(np.array(pks, dtype=np.int64), vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    return idx


def _crash_during_save(directory: Path, point: str, target: str) -> None:
    """In a child process: save generation 2 and die (os._exit) at ``point`` of ``target``."""

    def hook(name: str, path: Path) -> None:
        if name == point and (target == "*" or path.name.startswith(target)):
            os._exit(17)

    files.crash_hook = hook
    vectors.save(_index([1, 2, 3, 4]), directory, "m", generation=2, store_id="s")
    os._exit(0)


CASES = [
    (p, t)
    for p in vectors.CRASH_POINTS
    if p != "before_manifest"
    for t in ("vectors-", "vectors.manifest")
]
CASES.append(("before_manifest", "*"))


@pytest.mark.parametrize(("point", "target"), CASES)
def test_a_crash_at_any_point_of_a_save_leaves_the_old_or_the_new_index(
    tmp_path: Path, point: str, target: str
) -> None:
    vectors.save(_index([1, 2, 3]), tmp_path, "m", generation=1, store_id="s")
    child = multiprocessing.get_context("fork").Process(
        target=_crash_during_save, args=(tmp_path, point, target)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 17  # it did die at that point
    manifest, index = vectors.read(tmp_path)
    expected = {1: [1, 2, 3], 2: [1, 2, 3, 4]}[manifest.generation]
    assert sorted(index.ids().tolist()) == expected
    # a save after the crash cleans the leftovers
    vectors.save(_index([1, 2]), tmp_path, "m", generation=3, store_id="s")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [vectors.read(tmp_path)[0].file, vectors.MANIFEST_FILE]
    )


def test_truncated_or_missing_index_file_is_refused(tmp_path: Path) -> None:
    m = vectors.save(_index([1, 2, 3]), tmp_path, "m", generation=1, store_id="s")
    data = (tmp_path / m.file).read_bytes()
    (tmp_path / m.file).write_bytes(data[: len(data) // 3])
    with pytest.raises(IndexMismatch, match="checksum"):
        vectors.read(tmp_path)
    (tmp_path / m.file).unlink()
    with pytest.raises(IndexMismatch, match="no saved index"):
        vectors.read(tmp_path)


def test_service_rebuilds_a_truncated_index_before_it_is_ready(
    settings: Settings, loaded: Engine
) -> None:
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from tests.support import auth

    loaded.close()
    m = vectors.read(settings.index_dir)[0]
    (settings.index_dir / m.file).write_bytes(b"")  # truncated to nothing
    with TestClient(create_app(settings), headers=auth("admin")) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["indexed"] == ready["threads"] == 4
        assert client.get("/v1/admin/verify").json()["ok"]
        r = client.post("/v1/suggest", json={"title": "Camera records to microSD card"})
        assert r.json()["suggestions"][0]["thread_id"] == "t3"


# -- snapshots -------------------------------------------------------------------------
def test_snapshot_round_trip(tmp_path: Path, loaded: Engine) -> None:
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    assert info.threads == 4 and len(info.sha256) == 64
    assert snapshot.sidecar(info.path).read_text() == f"{info.sha256}  s.tar\n"
    before = {t.thread.id: t for b in loaded.store.iter_threads() for t in b}
    loaded.corpus.upsert([make_thread("t1", "changed"), make_thread("new", "extra thread")])
    loaded.corpus.delete("t2")
    restored = snapshot.restore(loaded.corpus, info.path)
    assert restored.threads == 4
    assert {t.thread.id: t for b in loaded.store.iter_threads() for t in b} == before
    assert loaded.corpus.verify().ok and loaded.corpus.generation == loaded.store.generation()
    hit = loaded.searcher.search("Bulb flickers with a wall dimmer", k=1).hits[0]
    assert hit.thread.thread.id == "t2"
    assert loaded.store.keyword_search("extra", 5) == []


def test_another_process_sees_a_restore_through_the_change_feed(
    tmp_path: Path, settings: Settings, loaded: Engine
) -> None:
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    loaded.corpus.upsert([make_thread("new", "Thermostat schedule")])
    replica = build_engine(settings, encoder=CountingEncoder(64))
    assert replica.corpus.index.count == 5
    snapshot.restore(loaded.corpus, info.path)
    replica.corpus.refresh()
    assert replica.corpus.index.count == 4 and replica.corpus.verify().ok
    replica.close(save=False)


def _tamper(path: Path, member: str) -> None:
    """Change one byte inside ``member``'s data, in place."""
    with tarfile.open(path) as tar:
        offset = tar.getmember(member).offset_data
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        b = fh.read(1)
        fh.seek(offset + 10)
        fh.write(bytes([b[0] ^ 0x01]))


@pytest.mark.parametrize("member", [snapshot.THREADS, snapshot.INDEX, snapshot.MANIFEST])
def test_tampered_snapshot_is_refused_and_nothing_changes(
    tmp_path: Path, loaded: Engine, member: str
) -> None:
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    loaded.corpus.upsert([make_thread("new", "extra thread")])
    _tamper(info.path, member)
    g = loaded.store.generation()
    with pytest.raises(SnapshotError, match="SHA-256 does not match"):
        snapshot.restore(loaded.corpus, info.path)
    # with the outer digest recomputed too, the member checksums still catch it
    snapshot.sidecar(info.path).write_text(f"{snapshot.sha256_file(info.path)}  s.tar\n")
    with pytest.raises(SnapshotError, match=r"checksum|not a readable|format"):
        snapshot.restore(loaded.corpus, info.path)
    assert loaded.store.generation() == g and loaded.corpus.count() == 5


def test_snapshot_needs_a_checksum_and_the_same_model(
    tmp_path: Path, settings: Settings, loaded: Engine
) -> None:
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    snapshot.sidecar(info.path).unlink()
    with pytest.raises(SnapshotError, match="no checksum"):
        snapshot.restore(loaded.corpus, info.path)
    snapshot.restore(loaded.corpus, info.path, expected_sha256=info.sha256)
    with pytest.raises(SnapshotError, match="never overwritten"):
        snapshot.create(loaded.corpus, info.path)
    loaded.close()
    other = build_engine(settings.model_copy(update={"model": "hash:32"}))
    with pytest.raises(SnapshotError, match="embedded as"):
        snapshot.restore(other.corpus, info.path, expected_sha256=info.sha256)
    other.close(save=False)


def test_failed_snapshot_write_leaves_no_file(
    tmp_path: Path, loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot.os, "fsync", full)
    with pytest.raises(SnapshotError, match="No space left"):
        snapshot.create(loaded.corpus, tmp_path / "snaps" / "s.tar")
    assert list((tmp_path / "snaps").iterdir()) == []


def test_snapshot_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("UNSOURCE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("UNSOURCE_MODEL", settings.model)
    monkeypatch.setenv("UNSOURCE_TRIAGE_MODEL_DIR", str(settings.triage_dir))
    eng = build_engine(settings)
    eng.upsert(SAMPLE)
    eng.close()
    runner = CliRunner()
    path = tmp_path / "snap" / "s.tar"
    r = runner.invoke(app, ["snapshot", "create", str(path)])
    assert r.exit_code == 0, r.output
    assert "4 threads" in r.output and snapshot.sha256_file(path) in r.output
    r = runner.invoke(app, ["snapshot", "restore", str(path)])
    assert r.exit_code == 0 and "restored 4 threads" in r.output, r.output
    _tamper(path, snapshot.THREADS)
    r = runner.invoke(app, ["snapshot", "restore", str(path)])
    assert r.exit_code == 2 and "SHA-256 does not match" in r.output
    r = runner.invoke(app, ["snapshot", "restore", str(tmp_path / "missing.tar")])
    assert r.exit_code == 2 and "no such snapshot" in r.output


def _rewrite(path: Path, member: str, data: bytes) -> None:
    """Rebuild the tar with ``member`` replaced, and its checksums consistent again."""
    import io
    import json

    with tarfile.open(path) as tar:
        parts = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    parts[member] = data
    if member != snapshot.MANIFEST:
        manifest = json.loads(parts[snapshot.MANIFEST])
        manifest["files"][member] = snapshot._sha(data)
        parts[snapshot.MANIFEST] = json.dumps(manifest).encode()
    path.unlink()
    with tarfile.open(path, "w") as tar:
        for name, body in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    snapshot.sidecar(path).write_text(f"{snapshot.sha256_file(path)}  {path.name}\n")


def test_restore_reads_the_bytes_it_verified(tmp_path: Path, loaded: Engine) -> None:
    """Audit finding 8: the file was hashed through one open and read through another, so
    swapping it in between restored unverified content."""
    good = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    loaded.corpus.upsert([make_thread("evil", "planted thread")])
    evil = snapshot.create(loaded.corpus, tmp_path / "evil.tar")
    real_verify = snapshot._verify

    def swap_then_verify(copy: Path, name: str) -> snapshot.Manifest:
        os.replace(evil.path, good.path)  # the attacker swaps the file after the hash
        return real_verify(copy, name)

    snapshot._verify = swap_then_verify
    try:
        snapshot.restore(loaded.corpus, good.path, expected_sha256=good.sha256)
    finally:
        snapshot._verify = real_verify
    ids = {t.thread.id for b in loaded.store.iter_threads() for t in b}
    assert "evil" not in ids and len(ids) == 4


def test_malformed_manifest_is_refused_naming_the_field(tmp_path: Path, loaded: Engine) -> None:
    """Audit finding 11: a manifest without 'space' crashed restore with a KeyError."""
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    _rewrite(info.path, snapshot.MANIFEST, b'{"format": 1, "dimension": 64, "threads": 4}')
    with pytest.raises(SnapshotError, match="field 'space'"):
        snapshot.restore(loaded.corpus, info.path)
    _rewrite(info.path, snapshot.MANIFEST, b'{"format": 1, "space": "x", "dimension": "big"}')
    with pytest.raises(SnapshotError, match="field 'dimension'"):
        snapshot.restore(loaded.corpus, info.path)


def test_a_member_larger_than_the_file_is_refused(tmp_path: Path, loaded: Engine) -> None:
    """Audit finding 9: a small sparse tar claimed gigabytes and was read whole."""
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    with tarfile.open(info.path) as tar:
        header_offset = tar.getmember(snapshot.THREADS).offset
    with open(info.path, "r+b") as fh:  # claim a 8 GiB member in the tar header
        fh.seek(header_offset + 124)
        fh.write(b"%011o\0" % (8 << 30))
        fh.seek(header_offset + 148)
        fh.write(b" " * 8)
        fh.seek(header_offset)
        header = bytearray(fh.read(512))
        fh.seek(header_offset + 148)
        fh.write(b"%06o\0 " % sum(header))
    snapshot.sidecar(info.path).write_text(f"{snapshot.sha256_file(info.path)}  s.tar\n")
    g = loaded.store.generation()
    with pytest.raises(SnapshotError):
        snapshot.restore(loaded.corpus, info.path)
    assert loaded.store.generation() == g


def test_create_never_follows_a_planted_symlink(tmp_path: Path, loaded: Engine) -> None:
    """Audit finding 10: temp files beside the snapshot were opened following symlinks."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for suffix in (".rows.tmp", ".tmp", ".sha256.tmp"):
        target = tmp_path / f"s{suffix}"
        planted = tmp_path / "snap" / f"s.tar{suffix}"
        planted.parent.mkdir(exist_ok=True)
        planted.symlink_to(victim)
        with pytest.raises(SnapshotError, match="exists"):
            snapshot.create(loaded.corpus, tmp_path / "snap" / "s.tar")
        planted.unlink()
        assert victim.read_text() == "precious" and not target.exists()
    assert not (tmp_path / "snap" / "s.tar").exists()


def _rows_with(path: Path, edit: dict[str, str], thread_id: str = "t1") -> bytes:
    import json

    with tarfile.open(path) as tar:
        raw = tar.extractfile(snapshot.THREADS).read()  # type: ignore[union-attr]
    rows = [json.loads(line) for line in raw.splitlines()]
    for row in rows:
        if row["thread"]["id"] == thread_id:
            row["thread"].update(edit)
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def test_restored_rows_are_admitted_like_any_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """Security N12: snapshot rows skipped admission, so a rewritten snapshot put raw
    phone numbers, e-mails and card numbers into the store, served by suggest."""
    for name in ("data_dir", "model", "triage_model_dir"):
        monkeypatch.setenv(f"UNSOURCE_{name.upper()}", str(getattr(settings, name)))
    eng = build_engine(settings)
    eng.upsert(SAMPLE)
    path = snapshot.create(eng.corpus, tmp_path / "s.tar").path
    eng.close()
    pii = {
        "answer": "call me on +44 20 7946 0958 or maria.silva@exemplo.pt, card 4111 1111 1111 1111",
        "url": "https://forum.example/t/1?email=maria.silva@exemplo.pt",
    }
    _rewrite(path, snapshot.THREADS, _rows_with(path, pii))
    r = CliRunner().invoke(app, ["snapshot", "restore", str(path)])
    assert r.exit_code == 0, r.output
    eng = build_engine(settings)
    try:
        stored = eng.corpus.get("t1")
        assert stored is not None
        for raw in ("7946 0958", "maria.silva", "4111 1111"):
            assert raw not in stored.thread.answer and raw not in (stored.thread.url or "")
        assert eng.corpus.verify().ok  # the changed row was re-encoded from its new text
        answer = eng.searcher.search(stored.thread.title, k=1).hits[0].thread.thread.answer
        assert "4111" not in answer
    finally:
        eng.close(save=False)
    _rewrite(path, snapshot.THREADS, _rows_with(path, {"id": "card-4111111111111111"}))
    r = CliRunner().invoke(app, ["snapshot", "restore", str(path)])
    assert r.exit_code == 2 and "personal data" in r.output, r.output


@pytest.mark.parametrize("kind", ["flat-ip", "hnsw", "nested-row"])
def test_the_last_malformed_snapshots_are_refused_not_crashed(
    tmp_path: Path, loaded: Engine, kind: str, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """Round-2 finding 11 (partly closed): a bare IndexFlatIP or an HNSW index as
    vectors.faiss, or a deeply nested threads.jsonl row, ended in a traceback."""
    info = snapshot.create(loaded.corpus, tmp_path / "s.tar")
    if kind == "nested-row":
        nested = b'{"pk": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
        _rewrite(info.path, snapshot.THREADS, nested)
    else:
        raw = (
            vectors.faiss.IndexFlatIP(64)
            if kind == "flat-ip"
            else vectors.faiss.IndexHNSWFlat(64, 8)
        )
        raw.add(np.eye(4, 64, dtype=np.float32))
        _rewrite(info.path, snapshot.INDEX, bytes(vectors.faiss.serialize_index(raw)))
    g = loaded.store.generation()
    with pytest.raises(SnapshotError):
        snapshot.restore(loaded.corpus, info.path)
    assert loaded.store.generation() == g
    loaded.close(save=False)
    for name in ("data_dir", "model", "triage_model_dir"):
        monkeypatch.setenv(f"UNSOURCE_{name.upper()}", str(getattr(settings, name)))
    r = CliRunner().invoke(app, ["snapshot", "restore", str(info.path)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert (
        "not an index unsource writes" if kind != "nested-row" else "RecursionError"
    ) in r.output
