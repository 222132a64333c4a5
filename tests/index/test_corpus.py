import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from index import seed
from index.errors import ValidationFailed
from index.vectors import layered as vectors
from service.config import Settings
from service.runtime import Engine, build_engine
from tests.support import SAMPLE, CountingEncoder, make_thread


def test_upsert_reembeds_only_changed_text(engine: Engine, encoder: CountingEncoder) -> None:
    report = engine.corpus.upsert(SAMPLE)
    assert sorted(report.created) == ["t1", "t2", "t3", "t4"] and len(encoder.encoded) == 4
    encoder.encoded.clear()
    same_text_new_votes = SAMPLE[0].model_copy(update={"answer_votes": 99})
    changed = SAMPLE[1].model_copy(update={"title": "Bulbs buzz on a dimmer switch"})
    report = engine.corpus.upsert([same_text_new_votes, changed])
    assert report.unchanged_text == ["t1"] and report.updated == ["t2"]
    assert len(encoder.encoded) == 1
    assert engine.corpus.get("t1").thread.answer_votes == 99  # type: ignore[union-attr]
    assert engine.corpus.index.count == 4


def test_update_replaces_vector(loaded: Engine) -> None:
    pk = loaded.store.pks_for_ids(["t2"])["t2"]
    before = loaded.corpus.index.vectors_for([pk])[pk]
    loaded.corpus.upsert([make_thread("t2", "Something entirely different")])
    after = loaded.corpus.index.vectors_for([pk])[pk]
    expected = loaded.encoder.encode([loaded.corpus.text_of(loaded.corpus.get("t2").thread)])[0]  # type: ignore[union-attr]
    assert not np.allclose(before, after)
    assert np.allclose(after, expected, atol=1e-3)  # the flat index keeps float16 codes
    assert loaded.corpus.index.count == 4


def test_duplicate_ids_in_one_batch_are_refused(engine: Engine) -> None:
    with pytest.raises(ValidationFailed) as err:
        engine.corpus.upsert([SAMPLE[0], SAMPLE[1], SAMPLE[0]])
    assert err.value.problems[0][:2] == ("item 2", "id")
    assert engine.corpus.count() == 0 and engine.corpus.index.count == 0


def test_delete_removes_from_store_fts_and_vectors(loaded: Engine) -> None:
    pk = loaded.store.pks_for_ids(["t3"])["t3"]
    assert loaded.corpus.delete("t3")
    assert loaded.corpus.get("t3") is None
    assert loaded.store.keyword_search("microSD", 5) == []
    assert pk not in set(loaded.corpus.index.ids().tolist())
    assert not loaded.corpus.delete("t3")


def _reopen(settings: Settings, encoder: CountingEncoder) -> Engine:
    return build_engine(settings, encoder=encoder)


def test_saved_index_is_reused_when_it_matches(settings: Settings, loaded: Engine) -> None:
    loaded.close()
    enc = CountingEncoder(64)
    again = _reopen(settings, enc)
    assert again.corpus.rebuilt_because is None
    assert again.corpus.index.count == 4 and enc.encoded == []
    again.close()


def test_a_replica_that_changed_nothing_does_not_rewrite_its_index_on_close(
    settings: Settings, loaded: Engine
) -> None:
    loaded.close()
    manifest = json.loads((settings.index_dir / vectors.MANIFEST_FILE).read_text())
    path = settings.index_dir / manifest["file"]
    written = path.stat().st_mtime_ns
    again = _reopen(settings, CountingEncoder(64))
    assert not again.corpus.unsaved()
    again.close()  # nothing changed: the file stands as it was
    assert path.stat().st_mtime_ns == written and path.exists()
    third = _reopen(settings, CountingEncoder(64))
    third.upsert([make_thread("t9", "Water leak sensor placement")])
    assert third.corpus.unsaved()
    third.close()  # changed: saved, and the next start loads it without catching up
    fourth = _reopen(settings, CountingEncoder(64))
    assert fourth.corpus.rebuilt_because is None and fourth.corpus.index.count == 5
    assert not fourth.corpus.unsaved()
    fourth.close()


def test_stale_index_catches_up_from_the_change_feed(settings: Settings, loaded: Engine) -> None:
    loaded.close()
    # writes the saved index never saw (e.g. a crash before the index was saved)
    writer = _reopen(settings, CountingEncoder(64))
    writer.corpus.upsert([make_thread("t5", "Door sensor shows open")])
    writer.corpus.upsert([make_thread("t2", "Bulbs buzz on a dimmer switch")])
    writer.corpus.delete("t3")
    writer.store.close()  # no save
    enc = CountingEncoder(64)
    again = _reopen(settings, enc)
    assert again.corpus.rebuilt_because is None  # caught up, not rebuilt
    assert again.corpus.index.count == 4 and again.corpus.verify().ok
    assert again.corpus.generation == again.store.generation()
    assert enc.encoded == []  # vectors came from the store, nothing re-encoded
    hit = again.searcher.search("Bulbs buzz on a dimmer switch", k=1).hits[0]
    assert hit.thread.thread.id == "t2" and hit.similarity > 0.99
    again.close()


def test_index_saved_after_the_stores_last_write_is_rebuilt(
    settings: Settings, loaded: Engine
) -> None:
    loaded.corpus.generation += 5  # as if the store had been put back to an older copy
    loaded.close()
    again = _reopen(settings, CountingEncoder(64))
    assert "after the store's last write" in (again.corpus.rebuilt_because or "")
    assert again.corpus.verify().ok
    again.close()


def test_index_of_another_store_is_rebuilt(settings: Settings, loaded: Engine) -> None:
    loaded.close()
    settings.database_path.unlink()  # a new, empty store: same generations, other threads
    for wal in settings.data_dir.glob("unsource.db-*"):
        wal.unlink()
    again = _reopen(settings, CountingEncoder(64))
    assert "another store" in (again.corpus.rebuilt_because or "")
    assert again.corpus.index.count == 0
    again.close()


def test_refresh_applies_writes_of_another_process(settings: Settings, loaded: Engine) -> None:
    other = _reopen(settings, CountingEncoder(64))  # e.g. the CLI, or another replica
    other.corpus.upsert([make_thread("t9", "Thermostat schedule resets")])
    other.corpus.delete("t1")
    assert loaded.corpus.index.count == 4
    assert loaded.corpus.refresh() == 2
    assert loaded.corpus.verify().ok and loaded.corpus.index.count == 4
    assert (
        loaded.searcher.search("Thermostat schedule resets", k=1).hits[0].thread.thread.id == "t9"
    )
    assert loaded.corpus.refresh() == 0
    other.close(save=False)


def test_corrupt_index_file_triggers_rebuild(settings: Settings, loaded: Engine) -> None:
    loaded.close()
    path = (
        settings.index_dir
        / json.loads((settings.index_dir / vectors.MANIFEST_FILE).read_text())["file"]
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    again = _reopen(settings, CountingEncoder(64))
    assert "checksum" in (again.corpus.rebuilt_because or "")
    assert again.corpus.index.count == 4
    hit = again.searcher.search("Camera records to microSD card", k=1)
    assert hit.hits[0].thread.thread.id == "t3"
    again.close()


def test_index_from_another_model_is_rebuilt_and_reencoded(
    settings: Settings, loaded: Engine
) -> None:
    loaded.close()
    other = CountingEncoder(32)  # different model name and dimension
    again = _reopen(settings, other)
    assert "built by model" in (again.corpus.rebuilt_because or "")
    assert len(other.encoded) == 4 and again.corpus.index.dimension == 32
    manifest = json.loads((settings.index_dir / vectors.MANIFEST_FILE).read_text())
    assert manifest["model"].startswith("hash:32") and manifest["count"] == 4
    again.close()


def test_save_is_atomic_and_manifest_describes_file(loaded: Engine, settings: Settings) -> None:
    manifest = loaded.corpus.save()
    files = sorted(p.name for p in Path(settings.index_dir).iterdir())
    assert files == sorted([manifest.file, vectors.MANIFEST_FILE])  # no temp or old files left
    assert manifest.count == 4 and manifest.dimension == 64
    assert manifest.generation == loaded.store.generation()


def test_verify_finds_index_drift(loaded: Engine) -> None:
    assert loaded.corpus.verify().ok
    pks = loaded.store.pks_for_ids(["t1", "t2"])
    loaded.corpus.index.remove([pks["t1"]])  # a thread the index lost
    vec = loaded.corpus.index.vectors_for([pks["t2"]])[pks["t2"]]
    loaded.corpus.index.remove([pks["t2"]])
    loaded.corpus.index.add(np.array([pks["t2"]]), -vec[None, :])  # a wrong vector
    loaded.corpus.index.add(np.array([999]), vec[None, :])  # a key the store lacks
    v = loaded.corpus.verify(sample=10)
    assert not v.ok
    assert v.missing == [pks["t1"]] and v.extra == [999] and v.misranked == [pks["t2"]]
    assert (v.threads, v.indexed, v.sampled) == (4, 4, 3)


def test_verify_route(client: TestClient) -> None:
    r = client.get("/v1/admin/verify", params={"sample": 5})
    assert r.status_code == 200 and r.json()["ok"] is True
    assert client.get("/v1/admin/verify", params={"sample": -1}).status_code == 422


def test_a_new_replica_starts_from_a_published_seed_and_catches_up(
    settings: Settings, loaded: Engine, tmp_path: Path
) -> None:
    loaded.close()  # saves its index
    seed_dir = tmp_path / "shared" / "seed"
    assert seed.publish(settings.index_dir, seed_dir).endswith(".faiss")
    writer = _reopen(settings, CountingEncoder(64))  # writes after the publish
    writer.corpus.upsert([make_thread("t5", "Door sensor shows open")])
    writer.corpus.delete("t3")
    writer.close(save=False)
    new = settings.model_copy(
        update={
            "data_dir": tmp_path / "replica-b",
            "database_url": f"sqlite:///{settings.database_path}",
            "index_seed_dir": seed_dir,
        }
    )
    enc = CountingEncoder(64)
    replica = _reopen(new, enc)
    assert replica.corpus.rebuilt_because is None  # loaded the seed, did not build
    assert enc.encoded == [] and replica.corpus.index.count == 4
    assert replica.corpus.verify().ok
    replica.close()
    assert seed.adopt(seed_dir, new.index_dir) is False  # has its own index now


def test_a_seed_of_another_store_is_rebuilt_over(
    settings: Settings, loaded: Engine, tmp_path: Path
) -> None:
    loaded.close()
    seed_dir = tmp_path / "seed"
    seed.publish(settings.index_dir, seed_dir)
    other = settings.model_copy(
        update={"data_dir": tmp_path / "elsewhere", "index_seed_dir": seed_dir}
    )
    fresh = _reopen(other, CountingEncoder(64))
    assert "another store" in (fresh.corpus.rebuilt_because or "")
    assert fresh.corpus.index.count == 0
    fresh.close()
    with pytest.raises(seed.SeedError, match="no saved index"):
        seed.publish(tmp_path / "nothing-here", seed_dir)
