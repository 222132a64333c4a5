"""Security finding N7 (2026-12-04): pt/es/it (and UK) formats that escaped redaction:
mobiles without spaces or with a +39/0034 prefix, area-code landlines, dashed or dotted
IBANs, "conto n.", accented e-mail addresses, cards glued to a label or split by "/" or
"_". Each must leave no digits of the number (or the address) behind."""

from __future__ import annotations

import re

import pytest

from triage import pii

LEAKED = {
    "phone": [
        "+39 333 1234567", "333 1234567", "0039 333 1234567", "06-12345678", "912345678",
        "612345678", "0034612345678", "07700 900123", "333/1234567", "+34 612345678",
    ],
    "iban": ["ES91-2100-0418-4502-0005-1332", "IT60.X054.2811.1010.0000.0123.456"],
    "account": ["conto n. 12345678"],
    "email": ["maría.lópez@correo.es", "joao@exemplo-açores.pt"],
    "card": [
        "nº4111111111111111", "4111   1111   1111   1111", "4111/1111/1111/1111",
        "4111_1111_1111_1111", "4111\t1111\t1111\t1111", "n.º 4111 1111 1111 1111 12/27 cvv 123",
    ],
}  # fmt: skip
CASES = [(kind, value) for kind, values in LEAKED.items() for value in values]


@pytest.mark.parametrize("kind,value", CASES, ids=[v for _, v in CASES])
def test_each_format_is_redacted(kind: str, value: str) -> None:
    redacted = pii.redact(f"Ciao, il mio dato è {value}, grazie")
    assert pii.PLACEHOLDER[kind] in redacted, redacted
    digits = re.sub(r"\D", "", value.split("@")[0] if kind == "email" else value)
    if kind == "email":
        assert "@" not in redacted
    else:
        assert not re.search(r"\d{4}", redacted), redacted  # no run of the number is left
    assert digits not in re.sub(r"\D", "", redacted) or not digits


def test_a_public_suggest_sentence_keeps_no_phone() -> None:
    text = "liguem-me para 912345678 ou +39 333 1234567"
    assert pii.redact(text) == "liguem-me para [PHONE] ou [PHONE]"


@pytest.mark.parametrize(
    "text",
    [
        "I have 350 bulbs and 120 plugs since 2019",
        "firmware 3.2.1 build 12345 released 2026-11-03",
        "Serial number 0000000000000000 on the box",
        "order 2024 costs 1299 euros",
    ],
)
def test_ordinary_numbers_stay(text: str) -> None:
    assert pii.detect(text) == []
