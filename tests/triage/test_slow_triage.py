"""Triage with the real multilingual encoder, trained the way `make triage-model` trains it.

Guards measured quality on the splits the policy was chosen on (CLINC150 val, the bundled
multilingual dev set); BANKING77 test is reported once in docs/triage.md, not asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eval.triage import evaluate
from service.api.app import create_app
from service.config import Settings
from service.runtime import build_engine, load_triage
from tests.support import API_KEYS, SHARED, SUMO_FILE, auth
from triage.datasets import read_forum, read_labelled, read_routes
from triage.decision import Triage

pytestmark = pytest.mark.slow
DATA = SHARED / "data"
DEV = Path(__file__).resolve().parents[2] / "eval" / "data" / "triage_dev.csv"
DOMAINS_DEV = Path(__file__).resolve().parents[2] / "eval" / "devsets" / "triage_domains_dev.csv"


@pytest.fixture(scope="module")
def router(real_triage_dir: Path) -> Iterator[Triage]:
    t = load_triage(Settings(triage_model_dir=real_triage_dir))
    yield t
    t.close()


def test_clinc_val_meets_the_routing_target(router: Triage) -> None:
    table = read_routes(DATA / "clinc150" / "routes.csv")
    rows = [
        r
        for f in ("val.csv", "oos_val.csv")
        for r in read_labelled(DATA / "clinc150" / f, table, "clinc150")
    ]
    result = evaluate(router, rows, "clinc150 val")
    assert result["staff"]["recall"] >= 0.99 and result["staff"]["precision"] >= 0.90
    assert result["intent"]["accuracy"] >= 0.90


def test_multilingual_dev_set(router: Triage) -> None:
    result = evaluate(router, read_labelled(DEV, None, "dev"), "dev")
    for lang in ("en", "pt", "es", "it"):
        assert result["by_language"][lang]["recall"] >= 0.95, lang
    assert result["staff"]["precision"] >= 0.90


def test_service_with_real_model_routes_and_fails_closed(
    real_triage_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "d", triage_model_dir=real_triage_dir, api_keys=API_KEYS
    )
    engine = build_engine(settings)
    with TestClient(create_app(settings, engine=engine), headers=auth("agent")) as client:
        iban = "ES91 2100 0418 4502 0005 1332"
        r = client.post("/v1/triage", json={"text": f"¿Cómo configuro el router? {iban}"})
        assert r.json()["route"] == "staff" and iban not in r.text
        r = client.post("/v1/suggest", json={"title": "Come configuro il router?"})
        assert r.json()["decision"] in ("suggest", "no_match")
        assert engine.triage is not None

        def boom(*_: object, **__: object) -> None:
            raise MemoryError("classifier down")

        engine.triage.model.predict = boom  # type: ignore[method-assign,assignment]
        r = client.post("/v1/suggest", json={"title": "Come configuro il router?"})
        assert r.json()["decision"] == "staff"
        assert "fail closed" in r.json()["reasons"][-1]["detail"]


def test_real_forum_questions_not_trained_on_stay_with_the_community(router: Triage) -> None:
    """SUMO Firefox weeks 62-63 (the model trains on 58-61): nearly all are ordinary
    how-to and troubleshooting questions; the few about a locked own account may go to
    staff. Measured 1.4 % false staff at the policy's threshold (docs/triage.md)."""
    rows = read_forum(DATA / "sumo_firefox" / SUMO_FILE.format(62), None)
    rows += read_forum(DATA / "sumo_firefox" / SUMO_FILE.format(63), None)
    staff = sum(router.route(r.text).route == "staff" for r in rows)
    assert staff / len(rows) <= 0.03, staff


def test_product_questions_in_four_languages(router: Triage) -> None:
    """eval/devsets/triage_domains_dev.csv: written for evaluation, never trained on."""
    rows = read_labelled(DOMAINS_DEV, None, "dev")
    result = evaluate(router, rows, "domains dev")
    for lang in ("en", "pt", "es", "it"):
        assert result["by_language"][lang]["recall"] == 1.0, lang
    assert result["staff"]["precision"] >= 0.75
