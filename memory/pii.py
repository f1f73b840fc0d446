"""Private data masking: e-mail addresses, phone numbers, ID and card numbers become placeholders.

`mask_pii(text)` is the one function every writer of lasting text calls (long-term memories,
reflection notes, traces, logs); `PiiLogFilter` applies it to log records. It has no
dependencies, so any layer may import it.

What is masked, and how false positives are kept down (ordinary numbers must survive: "17% of
2,340", "2024-05-01", "1,234,567"):

- e-mail addresses;
- Chinese resident ID numbers: 18 characters, 6-digit region, a real birth date (19xx/20xx),
  3 digits and a digit or X; the ISO 7064 check digit is not required (a mistyped ID is still
  private), the date structure is what tells it from any 18-digit number;
- card numbers: 13-19 digits, optionally in groups split by spaces or dashes, that pass the
  Luhn check (which 90% of random digit strings fail);
- US social security numbers written 123-45-6789;
- phone numbers: Chinese mobiles (1[3-9] + 9 digits, optional +86), numbers written with a
  leading + and a country code, North American (555) 123-4567 / 555-123-4567, and Chinese
  landlines 0xx-xxxxxxxx.
"""

from __future__ import annotations

import logging
import re

EMAIL = "[email]"
PHONE = "[phone]"
ID_NUMBER = "[id number]"
CARD = "[card number]"

# Digits inside a word (a hex id, a hash, "tok1457316045...") are no phone or card number:
# every number pattern needs a non-alphanumeric on both sides.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])")
_CN_ID = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])")
_CARD = re.compile(r"(?<![\dA-Za-z+-])\d(?:[ -]?\d){12,18}(?![\dA-Za-z-])")
_SSN = re.compile(r"(?<![\dA-Za-z-])\d{3}-\d{2}-\d{4}(?![\dA-Za-z-])")
# Mobiles and +country numbers go before card numbers (a +86 mobile can pass Luhn), the
# others after (a 4-4-4-4 card must not lose a group to a phone pattern).
_PHONES_FIRST = (
    re.compile(r"(?<![\dA-Za-z+])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?![\dA-Za-z])"),
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\dA-Za-z])"),
)
_PHONES_AFTER = (
    re.compile(r"(?<![\dA-Za-z(])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\dA-Za-z])"),
    re.compile(r"(?<![\dA-Za-z])0\d{2,3}-\d{7,8}(?![\dA-Za-z])"),
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    # Without separators, 13-14 digits are more often a timestamp in milliseconds than a card.
    shortest = 13 if len(digits) != len(match.group()) else 15
    return CARD if shortest <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1 else match.group()


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return PHONE if 7 <= len(digits) <= 15 else match.group()


def mask_pii(text: str) -> str:
    """`text` with private data replaced by [email], [phone], [id number] and [card number]."""
    if not text or not isinstance(text, str):
        return text
    text = _EMAIL.sub(EMAIL, text)
    text = _CN_ID.sub(ID_NUMBER, text)
    for pattern in _PHONES_FIRST:
        text = pattern.sub(_phone, text)
    text = _CARD.sub(_card, text)
    text = _SSN.sub(ID_NUMBER, text)
    for pattern in _PHONES_AFTER:
        text = pattern.sub(_phone, text)
    return text


class PiiLogFilter(logging.Filter):
    """Masks private data in every record a handler emits (message with its arguments, and the
    formatted traceback). Installed on the app's log handlers (`install_log_masking`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's problem to report, not ours
            return True
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        return True


def install_log_masking(handlers: list[logging.Handler], enabled: bool = True) -> None:
    """Add (or, with `enabled=False`, remove) the masking filter on these handlers."""
    for handler in handlers:
        present = [f for f in handler.filters if isinstance(f, PiiLogFilter)]
        if enabled and not present:
            handler.addFilter(PiiLogFilter())
        elif not enabled:
            for f in present:
                handler.removeFilter(f)
