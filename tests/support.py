"""What tests share besides fixtures: paths to the shared data, the sample threads, the
counting encoder, API keys per role. Imported by test modules and by conftest.py (which
holds only fixtures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.models import Thread
from retrieval.encoders.base import HashingEncoder
from service.api.auth import ApiKey, digest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEMEVAL = SHARED / "data" / "semeval2016"
TRIAGE_TRAIN = Path(__file__).parent / "data" / "triage_train.csv"
TEST_POLICY = Path(__file__).parent / "data" / "policy.toml"
SUMO_FILE = "firefox-{}-week-1-id-created-title-content-tags-product-topic.csv"
TRIAGE_ENCODER = "hash:128"


class CountingEncoder(HashingEncoder):
    """The hashing encoder, counting how many texts it was asked to encode."""

    def __init__(self, dimension: int = 64) -> None:
        super().__init__(dimension)
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return super().encode(texts)


def make_thread(tid: str, title: str, body: str = "", answer: str = "", **kw: object) -> Thread:
    return Thread.model_validate({"id": tid, "title": title, "body": body, "answer": answer, **kw})


SAMPLE = [
    make_thread("t1", "Reset the hub to factory settings", "The hub light blinks orange",
                "Hold the button for 15 seconds", tags=["hub"], language="en"),
    make_thread("t2", "Bulb flickers with a wall dimmer", "My bulbs buzz", "Replace the dimmer",
                tags=["bulbs"], language="en"),
    make_thread("t3", "Camera records to microSD card", "No cloud subscription",
                "Yes, up to 256 GB", tags=["camera"], language="en"),
    make_thread("t4", "Como reiniciar o hub de fábrica", "Luz laranja piscando",
                "Segure o botão 15 segundos", tags=["hub"], language="pt"),
]  # fmt: skip

# one key per role; the configuration holds only their digests
KEYS = {role: f"uns_test_{role}_key" for role in ("public", "agent", "admin")}
API_KEYS = [ApiKey(name=f"test-{r}", role=r, sha256=digest(k)) for r, k in KEYS.items()]


def auth(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


# three knowledge gaps planted in a question stream (the hashing encoder: the planted
# questions share their words): tests/service/test_insights.py and the console test
PLANTED = {
    "toner": [
        "printer toner cartridge empty warning",
        "printer toner cartridge warning stays on",
        "toner cartridge warning printer display",
        "printer shows toner cartridge empty",
    ],
    "garage": [
        "garage door opener remote stopped working",
        "garage door remote opener not working",
        "opener remote for garage door stopped",
        "garage door opener remote battery stopped",
    ],
    "solar": [
        "solar panel inverter shows error code",
        "inverter error code on solar panel",
        "solar inverter panel error code blinking",
    ],
}
