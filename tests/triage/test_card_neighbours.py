"""Security finding N3 (2026-12-04): a card number beside other digits (an order number
before it, an expiry or a CVV after it) was one invalid 18-19 digit run, so the PAN, the
expiry and the CVV were stored raw. Every Luhn-valid window of whole digit groups is a
card now, and the expiry and security code written after it go with it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage import pii

CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "4111111111111111", "3782 822463 10005"]


@pytest.mark.parametrize(
    "text,kept",
    [
        ("card 4111 1111 1111 1111 12/27 cvv 123", "card [CARD]"),
        ("tarjeta 4111111111111111 12 27", "tarjeta [CARD]"),
        ("4111 1111 1111 1111 123", "[CARD]"),
        ("pedido 12 4111 1111 1111 1111", "pedido 12 [CARD]"),
        ("carta 5500 0000 0000 0004 09/28 CVV 123", "carta [CARD]"),
        (
            "cartão 4111 1111 1111 1111 validade 12/2027 código 123 obrigado",
            "cartão [CARD] obrigado",
        ),
        ("ordine 7 5500-0000-0000-0004 scadenza 01/29, grazie", "ordine 7 [CARD], grazie"),
        ("card 4111 1111 1111 1111 exp 12/27", "card [CARD]"),
    ],
)
def test_card_with_neighbouring_digits_is_redacted_with_expiry_and_cvv(
    text: str, kept: str
) -> None:
    assert pii.redact(text) == kept


def test_long_numbers_that_are_not_cards_stay() -> None:
    for text in ("order 2024 1234 5678 9012 ok", "invoice 123456789012 from 2026-11-03"):
        assert "[CARD]" not in pii.redact(text)


_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=6)
_NEIGHBOURS = st.lists(_DIGITS, max_size=3).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CARDS),
    _NEIGHBOURS,
    _NEIGHBOURS,
    st.sampled_from([" ", "  ", ", ", " / "]),
)
def test_a_card_between_digit_groups_never_survives(
    card: str, before: str, after: str, sep: str
) -> None:
    text = f"pedido {before}{sep}{card}{sep}{after} obrigado"
    redacted = pii.redact(text)
    digits = card.replace(" ", "")
    assert "[CARD]" in redacted
    assert digits not in redacted.replace(" ", "").replace(",", "").replace("/", "")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CARDS), st.integers(1, 12), st.integers(0, 99), st.integers(100, 9999))
def test_expiry_and_cvv_after_a_card_are_redacted(card: str, mm: int, yy: int, cvv: int) -> None:
    redacted = pii.redact(f"my card {card} {mm:02d}/{yy:02d} cvv {cvv} thanks")
    assert redacted == "my card [CARD] thanks"
