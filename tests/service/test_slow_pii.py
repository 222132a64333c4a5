"""200 synthetic tickets full of real-looking PII (Luhn-valid cards, valid IBANs, emails,
phones) go through ingest, suggest, triage, question registration and the triage
evaluation. Afterwards no raw value is in the store, its FTS index, the vector index files,
the logs, any response, or the evaluation output."""

from __future__ import annotations

import csv
import io
import logging
import random
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.cli.root import app as cli
from service.config import Settings
from service.observability import configure_logging
from service.runtime import build_engine
from tests.support import CountingEncoder, auth
from triage import pii

pytestmark = pytest.mark.slow
TEMPLATES = [
    "Refund {card} please, I was charged twice. Reply to {email}",
    "Change my direct debit to {iban}, call me on {phone}",
    "Reembolso no cartão {card}, meu email é {email}",
    "Cambiar la domiciliación a {iban}; teléfono {phone}",
    "Il mio telefono è {phone} e la carta {card}",
    "How do I reset the hub? Email {email} or call {phone}",
]


def luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))


def german_iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randrange(10)) for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # "DE" = 13 14, check digits 00
    iban = f"DE{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def tickets(n: int = 200, seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, raws = [], []
    for i in range(n):
        values = {
            "card": luhn_card(rng),
            "iban": german_iban(rng),
            "email": f"cust{i}.{rng.randrange(10**6)}@mail{i % 7}.example.com",
            "phone": f"+44 20 7946 {rng.randrange(10**4):04d}",
        }
        template = TEMPLATES[i % len(TEMPLATES)]
        texts.append(template.format(**values))
        for name, value in values.items():
            if "{" + name + "}" in template:
                raws.append(value)
    return texts, raws


def forms(raw: str) -> set[str]:
    """The value as written and without separators (how a leak could look)."""
    return {raw, raw.replace(" ", "")}


def test_no_raw_pii_anywhere(settings: Settings, tmp_path: Path) -> None:
    texts, raws = tickets()
    for text in texts:  # the detectors see every planted value
        found = {text[f.start : f.end] for f in pii.detect(text)}
        assert all(r in found for r in raws if r in text), text
    log_stream = io.StringIO()
    configure_logging("json", stream=log_stream)
    conf = settings.model_copy(update={"rate_limits": {}})
    engine = build_engine(conf, encoder=CountingEncoder(64))
    bodies: list[str] = []
    try:
        with TestClient(create_app(conf, engine=engine), headers=auth("admin")) as c:
            threads = [
                {"id": f"tk-{i}", "title": t[:120], "body": t, "answer": f"Answered: {t}"}
                for i, t in enumerate(texts)
            ]
            for i in range(0, 200, 50):
                r = c.post("/v1/threads:bulk", json={"threads": threads[i : i + 50]})
                assert r.status_code == 200
                bodies.append(r.text)
            for i, text in enumerate(texts):
                for r in (
                    c.post("/v1/suggest", json={"title": text[:200], "body": text}),
                    c.post("/v1/triage", json={"text": text}),
                    c.post("/v1/questions", json={"id": f"q-{i}", "title": text[:200]}),
                    c.get(f"/v1/threads/tk-{i}"),
                ):
                    assert r.status_code in (200, 201), r.text
                    bodies.append(r.text)
            bodies.append(c.get("/v1/escalations").text)
            logging.getLogger("unsource.test").info("last ticket: %s", texts[-1])
    finally:
        logging.getLogger().handlers.clear()

    labelled = tmp_path / "tickets.csv"
    with labelled.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "route", "queue"])
        w.writerows([t, "staff", "billing"] for t in texts)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        cli,
        ["eval", "triage", "--data", str(labelled), "--out", str(out)],
        env={"UNSOURCE_TRIAGE_MODEL_DIR": str(conf.triage_dir)},
    )
    assert result.exit_code == 0, result.output
    bodies.append(result.output)

    scanned: dict[str, bytes] = {
        str(p): p.read_bytes()
        for root in (conf.data_dir, out)
        for p in root.rglob("*")
        if p.is_file()
    }
    assert any(name.endswith("unsource.db") for name in scanned)
    assert any(name.endswith("activity.db") for name in scanned)
    assert any(name.endswith("triage.json") for name in scanned)
    scanned["log"] = log_stream.getvalue().encode()
    scanned["responses"] = "\n".join(bodies).encode()
    assert b"[CARD]" in scanned["responses"] and b"[EMAIL]" in scanned["log"] + scanned["responses"]
    leaks = [
        (name, raw)
        for raw in raws
        for form in forms(raw)
        for name, data in scanned.items()
        if form.encode() in data
    ]
    assert leaks == []
    # the FTS index holds tokens, not strings: no token of a planted value may be in it
    copy = tmp_path / "copy.db"
    for suffix in ("", "-wal", "-shm"):  # committed pages may still be in the WAL
        src = Path(f"{conf.database_path}{suffix}")
        if src.exists():
            shutil.copy(src, f"{copy}{suffix}")
    with sqlite3.connect(copy) as db:
        db.execute("CREATE VIRTUAL TABLE vocab USING fts5vocab(threads_fts, 'row')")
        terms = {row[0] for row in db.execute("SELECT term FROM vocab")}
    assert len(terms) > 20
    planted = {
        tok.lower()
        for raw in raws
        for tok in re.split(r"[^0-9A-Za-z]+", raw)
        if len(tok) >= 4 and any(ch.isdigit() for ch in tok)
    }
    assert planted and not planted & terms
