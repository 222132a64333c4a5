"""PII detectors on valid test numbers and on look-alikes that must not fire."""

import pytest

from triage.pii import detect, iban_ok, luhn_ok, redact

CARDS = [
    "4111 1111 1111 1111",  # Visa test number
    "5555-5555-5555-4444",  # Mastercard
    "378282246310005",  # Amex
    "6011111111111117",  # Discover
    "4012888888881881",
]
IBANS = [
    "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000",
    "PT50000201231234567890154",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
]
LOOK_ALIKES = [
    "My order number is 4111111111111112 and it has not shipped",  # Luhn fails
    "Order #123456789012 was delivered on 2026-11-23",
    "It costs $1,299.99 or QR1;500 per month",
    "Tracking 1Z999AA10123456784 shows in transit",
    "Serial number 0000000000000000 on the box",  # Luhn-valid but no issuer prefix
    "Firmware 4.2.1 build 20261123 released 23/11/2026",
    "Call me between 10:30 and 12:45 on 2026-11-23",
    "The model SKU is GB12ABCD1234 and it's great",  # IBAN shape, bad checksum/length
    "I have 3 bulbs, 2 plugs and 1 hub since 2019",
    "Version 2026.11.23 fixes bug 1234",
    "2026-11-23 18:30:50,814 INFO server started",  # a log timestamp
    "Since 23/11/2026 18:30 the hub is offline",
]


@pytest.mark.parametrize("card", CARDS)
def test_valid_cards_are_found_and_redacted(card: str) -> None:
    text = f"charge on card {card} twice"
    assert [f.type for f in detect(text)] == ["card"]
    assert redact(text) == "charge on card [CARD] twice"
    assert luhn_ok(card.replace(" ", "").replace("-", ""))


@pytest.mark.parametrize("iban", IBANS)
def test_valid_ibans_are_found(iban: str) -> None:
    text = f"transfer to {iban} please"
    assert [f.type for f in detect(text)] == ["iban"]
    assert redact(text) == "transfer to [IBAN] please"
    assert iban_ok(iban)


def test_iban_with_one_digit_changed_is_not_an_iban() -> None:
    assert not iban_ok("DE89370400440532013001")


def test_look_alikes_do_not_fire() -> None:
    false_positives = [(t, detect(t)) for t in LOOK_ALIKES if detect(t)]
    assert false_positives == []


def test_email_phone_account_in_several_languages() -> None:
    text = (
        "Write to ana.silva+help@example.com.br or call +351 912 345 678; "
        "meu número de cliente: 88231907. Mi cuenta 4455667788, (11) 98765-4321."
    )
    kinds = [f.type for f in detect(text)]
    assert kinds == ["email", "phone", "account", "account", "phone"]
    red = redact(text)
    for raw in ("ana.silva", "912 345 678", "88231907", "4455667788", "98765-4321"):
        assert raw not in red
    assert "[EMAIL]" in red and "[PHONE]" in red and "[ACCOUNT]" in red


def test_overlaps_prefer_card_over_phone() -> None:
    found = detect("card 4111 1111 1111 1111")
    assert [f.type for f in found] == ["card"]


def test_redact_without_pii_is_identity() -> None:
    assert redact("How do I reset my hub?") == "How do I reset my hub?"


def test_iban_holding_a_luhn_valid_run_is_one_iban() -> None:
    text = "Cambiar la domiciliación a DE19 2246 5186 2907 1204 80; gracias"
    assert [(f.type, text[f.start : f.end]) for f in detect(text)] == [
        ("iban", "DE19 2246 5186 2907 1204 80")
    ]
