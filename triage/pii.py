"""PII detection and redaction: payment cards (Luhn + issuer prefix), IBANs (mod 97 +
country length), emails, phone numbers and account/customer numbers (by context words in
en, pt, es, it). Regex + checksums: offline, fast, and tested against look-alikes
(order numbers, dates, prices).

Every pattern here sees text from the public: each runs in time linear in the text's size
(every quantifier is bounded, so a failed match attempt at one position costs a constant),
and ``tests/triage/test_regex_linear.py`` feeds adversarial inputs up to the body limit to each one.
Separators inside numbers may be spaces, no-break spaces (U+00A0, U+202F), dots or dashes,
single or doubled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PiiType = Literal["card", "iban", "email", "phone", "account"]
PLACEHOLDER: dict[str, str] = {
    "card": "[CARD]",
    "iban": "[IBAN]",
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "account": "[ACCOUNT]",
}
# the order in which overlapping findings win
PRIORITY: tuple[PiiType, ...] = ("card", "iban", "email", "account", "phone")


@dataclass(frozen=True)
class Finding:
    type: PiiType
    start: int
    end: int

    @property
    def placeholder(self) -> str:
        return PLACEHOLDER[self.type]


# -- payment cards -----------------------------------------------------------------------
# separators written inside numbers: space, no-break spaces, dot, dash (at most two in a row)
_SEP = "[ \u00a0\u202f.-]"
# a maximal run of digit groups joined by separators (each match is one run: linear); a
# card may be glued to a label ("nº4111...") and written with "/", "_" or up to 3 spaces
_CARD_SEP = "[ \t\u00a0\u202f./_-]"
_DIGIT_RUN = re.compile(rf"(?<!\d)\d{{1,40}}(?:{_CARD_SEP}{{1,3}}\d{{1,40}})*(?!\d)")
_GROUP = re.compile(r"\d+")  # digit groups: of a card number, of a phone number
_NOT_DIGIT = re.compile(r"\D")
_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9]|2)"
    r"|35(?:2[89]|[3-8]\d)|5[06-9])"
)
# what a card's expiry and security code look like right after the number (en/pt/es/it
# labels, all optional): "12/27", "exp 12/2027", "validade 09-28", "cvv 123", "CVC: 1234"
_EXPIRY = (
    r"(?:(?:exp(?:iry|ires|\.)?|valid(?:ade|ez|it[àa])?|venc(?:imento|e)?|caducidad"
    r"|scad(?:enza)?|val\.?)\s{0,3}[:.]?\s{0,3})?(?:0?[1-9]|1[0-2])\s{0,2}[/-]\s{0,2}(?:\d{4}|\d{2})"
    r"|(?:0?[1-9]|1[0-2]) (?:\d{4}|\d{2})(?!\d)"
)
_CVV = (
    r"(?:(?:cvv2?|cvc2?|cv2|csc|cid|c[óo]digo(?: de seguran[çc]a)?|codice(?: di sicurezza)?)"
    r"\s{0,3}[:.#]?\s{0,3})?\d{3,4}(?!\d)"
)
_CARD_TAIL = re.compile(
    rf"(?:[\s,;]{{1,3}}(?:{_EXPIRY})(?:[\s,;]{{1,3}}(?:{_CVV}))?|[\s,;]{{1,3}}(?:{_CVV}))(?![\w/])",
    re.IGNORECASE,
)
CARD_DIGITS = (13, 19)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_ok(digits: str) -> bool:
    lo, hi = CARD_DIGITS
    return lo <= len(digits) <= hi and bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)


def _card_windows(run: str, offset: int) -> list[tuple[int, int]]:
    """(start, end) of the card numbers in one run of digit groups: every window of whole
    groups holding 13-19 digits is tried (a card is written as whole groups), so digits
    before or after the card ("order 12 4111 1111 1111 1111 12 27") don't hide it. A
    window holds at most 19 digits, so each group starts a bounded number of windows:
    linear in the run's length. Windows are taken left to right, the longest valid one
    at each start, never overlapping."""
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    lo, hi = CARD_DIGITS
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        best, digits, j = None, "", i
        while j < len(groups) and len(digits) < hi:
            digits += run[groups[j][0] : groups[j][1]]
            j += 1
            if lo <= len(digits) <= hi and card_ok(digits):
                best = j
        if best is None:
            i += 1
            continue
        out.append((offset + groups[i][0], offset + groups[best - 1][1]))
        i = best
    return out


def _cards(text: str) -> list[Finding]:
    """Payment card numbers, each with the expiry date and security code written right
    after it (PCI DSS forbids keeping a CVV at all): one ``[CARD]`` covers all three."""
    out = []
    for m in _DIGIT_RUN.finditer(text):
        for start, end in _card_windows(m.group(), m.start()):
            tail = _CARD_TAIL.match(text, end)
            out.append(Finding("card", start, tail.end() if tail else end))
    return out


# -- IBAN --------------------------------------------------------------------------------
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "SA": 24, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "TR": 26, "AE": 23,
}  # fmt: skip
# grouped with spaces, no-break spaces, dashes or dots ("ES91-2100-...", "IT60.X054....")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ \u00a0\u202f.-]{0,2}[A-Z0-9]){11,30}\b", re.IGNORECASE)
_IBAN_SPACE = re.compile(r"[ \u00a0\u202f.-]")


def iban_ok(candidate: str) -> bool:
    iban = _IBAN_SPACE.sub("", candidate).upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _ibans(text: str) -> list[Finding]:
    out = []
    for m in _IBAN.finditer(text):
        raw = m.group()
        # a match may run into the next word: try shrinking from the right, word by word
        for end in range(len(raw), 14, -1):
            if (end == len(raw) or _IBAN_SPACE.match(raw[end])) and iban_ok(raw[:end]):
                out.append(Finding("iban", m.start(), m.start() + end))
                break
    return out


# -- email, phone, account ---------------------------------------------------------------
# RFC 5321 limits: local part <= 64, labels <= 63; at most 8 labels, TLD <= 24 letters
# the local part and the labels may hold accented letters ("maría.lópez@correo.es")
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,7}\.[^\W\d_]{2,24}\b"
)
# international (+CC ...) or grouped national numbers; 9 to 15 digits in all
_PHONE = re.compile(
    rf"(?<![\w+])(?:\+\d{{1,3}}{_SEP}{{0,2}})?(?:\(\d{{1,4}}\){_SEP}{{0,2}})?\d{{2,5}}"
    rf"(?:{_SEP}{{1,2}}\d{{2,5}}){{1,4}}(?![\w-])"
    r"|(?<![\w+])\+\d{8,15}(?!\w)"
)
# national mobile and landline numbers written without the grouping the rule above needs:
# Italian mobiles (3xx 1234567), Portuguese (9[1236]x xxx xxx), Spanish (6/7xx xxx xxx),
# UK (07xxx xxxxxx), Italian/Spanish landlines with an area code (06-12345678), and
# numbers with a 00 international prefix (0039 333 1234567)
_NATIONAL_SEP = "[ \u00a0\u202f./-]?"
_NATIONAL_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ \u00a0]?)?(?:"
    rf"00[1-9]\d{{0,2}}{_NATIONAL_SEP}\d{{2,4}}{_NATIONAL_SEP}\d{{3,4}}{_NATIONAL_SEP}?\d{{3,4}}"
    rf"|3\d{{2}}{_NATIONAL_SEP}\d{{6,7}}"
    rf"|9[1236]\d{_NATIONAL_SEP}\d{{3}}{_NATIONAL_SEP}\d{{3}}"
    rf"|[67]\d{{2}}{_NATIONAL_SEP}\d{{3}}{_NATIONAL_SEP}\d{{3}}"
    rf"|07\d{{3}}{_NATIONAL_SEP}\d{{6}}"
    rf"|0\d{{1,3}}[-/]\d{{6,8}}"
    r")(?![\w-])"
)
_DATE_LIKE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}$")
# a date then more digits: "2026-11-23 18" out of "2026-11-23 18:30:50"
_DATE_PREFIX = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})\b")
_ACCOUNT = re.compile(
    r"\b(?:account|acct|customer|client|member|conta|cliente|cuenta|conto|utente"
    r"|n[úu]mero de cliente)"
    r"(?:\s{1,3}(?:number|no\.?|num\.?|id|n[º°o]\.?|n\.|n[úu]mero|numero))?\s{0,3}[:#]?\s{0,3}"
    r"(?P<num>(?=[A-Z0-9-]{0,20}\d{5})[A-Z0-9][A-Z0-9-]{4,24})\b",
    re.IGNORECASE,
)


def _emails(text: str) -> list[Finding]:
    return [Finding("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]


def _phones(text: str) -> list[Finding]:
    out = [Finding("phone", m.start(), m.end()) for m in _NATIONAL_PHONE.finditer(text)]
    for m in _PHONE.finditer(text):
        raw = m.group()
        digits = _NOT_DIGIT.sub("", raw)
        if not 9 <= len(digits) <= 15 or _DATE_LIKE.match(raw) or _DATE_PREFIX.match(raw):
            continue
        if not raw.startswith("+") and "(" not in raw and len(_GROUP.findall(raw)) < 3:
            continue  # two bare groups ("2024 1234") are more often numbers than phones
        out.append(Finding("phone", m.start(), m.end()))
    return out


def _accounts(text: str) -> list[Finding]:
    return [Finding("account", m.start("num"), m.end("num")) for m in _ACCOUNT.finditer(text)]


# every detector needs a digit (cards, IBANs, phones, account numbers) or an "@" (emails)
_ANY_DIGIT = re.compile(r"\d")


def detect(text: str) -> list[Finding]:
    """All PII findings, non-overlapping (higher-priority types win), in text order. A text
    with no digit and no "@" has none: it is not scanned (most log fields and questions)."""
    if "@" not in text and _ANY_DIGIT.search(text) is None:
        return []
    return _detect_all(text)


def _detect_all(text: str) -> list[Finding]:
    ibans = _ibans(text)
    # an IBAN's digits can hold a Luhn-valid run: the checksummed IBAN around it wins
    cards = [
        c for c in _cards(text) if not any(i.start <= c.start and c.end <= i.end for i in ibans)
    ]
    found = cards + ibans + _emails(text) + _accounts(text) + _phones(text)
    found.sort(key=lambda f: (PRIORITY.index(f.type), f.start))
    # a character map of what is taken: each finding checks and marks its own span only,
    # so resolving overlaps is linear in the text and the findings (it was quadratic in
    # the findings: an e-mail-dense 80 KB text took 4 s)
    taken = bytearray(len(text))
    kept: list[Finding] = []
    for f in found:
        if taken.find(1, f.start, f.end) == -1:
            taken[f.start : f.end] = b"\x01" * (f.end - f.start)
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def redact(text: str, findings: list[Finding] | None = None) -> str:
    """Replace each finding with its placeholder, e.g. ``[CARD]``."""
    findings = detect(text) if findings is None else findings
    parts, last = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        parts += [text[last : f.start], f.placeholder]
        last = f.end
    parts.append(text[last:])
    return "".join(parts)
