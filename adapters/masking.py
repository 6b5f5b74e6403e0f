"""Masking secret values in text an engine or a proxy sends back: pure, and applied before any text is cut.

An engine's error may quote what it was sent: the API key from the `Authorization` header, the artifact
credentials from the body. It may quote it whole, cut short (a message cut to length, an oversized header's
first bytes), or transformed on the way. `SecretMask` masks, for each secret value:

* the value itself and its forms an engine or proxy plausibly echoes: URL-encoded (`quote` and `quote_plus`),
  JSON-escaped, and base64 — of the value at each of the three byte alignments, so also inside the base64 of
  `Bearer VALUE` or of any longer text;
* in any letter case (ASCII);
* and, for a value of `FRAGMENT` characters or more, every fragment of any of those forms that is
  `FRAGMENT` characters or longer, wherever it stands.

Shorter values are masked whole only, and values under `SHORTEST` characters not at all: masking them
would garble every text (and no real key or token is that short). A masked run becomes `***`. What is left
of a value is at most `FRAGMENT - 1` characters of it, never enough to guess it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus

FRAGMENT: Final = 8
"""The shortest fragment of a secret value that is masked wherever it appears."""
SHORTEST: Final = 4
"""Values shorter than this are not masked."""
MASK: Final = "***"

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(text: str) -> str:
    """Lower-case ASCII letters only, so that positions in the folded text are positions in the original."""
    return text.translate(_ASCII_LOWER)


def _base64_cores(value: str) -> list[str]:
    """The base64 characters that depend only on `value`'s bytes, for each of the three alignments it may
    start at inside a longer encoded text (character j covers bits [6j, 6j+6))."""
    raw = value.encode()
    cores = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        first = -(-8 * pad // 6)
        last = 8 * (pad + len(raw)) // 6
        cores.append(encoded[first:last])
    return cores


def echoed_forms(value: str) -> set[str]:
    """The forms of `value` that an engine or a proxy plausibly sends back."""
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        *_base64_cores(value),
        base64.b64encode(f"Bearer {value}".encode()).decode().rstrip("="),
    }
    return {form for form in forms if form}


class SecretMask:
    """Masks every form of some secret values; values of `FRAGMENT` characters or more also in fragments."""

    __slots__ = ("_fragments", "_whole")

    def __init__(self, values: Iterable[str], *, whole_only: Iterable[str] = ()) -> None:
        """`values`: secrets (keys, tokens, credentials); `whole_only`: values masked only whole and exactly
        as written (settings that now and then hold a token, where masking fragments would garble text)."""
        fragments: set[str] = set()
        whole: set[str] = {v for v in whole_only if len(v) >= SHORTEST}
        for value in values:
            if len(value) < SHORTEST:
                continue
            for form in echoed_forms(value):
                folded = _fold(form)
                if len(folded) >= FRAGMENT:
                    fragments.update(folded[i : i + FRAGMENT] for i in range(len(folded) - FRAGMENT + 1))
                else:
                    whole.add(form)
        self._fragments = frozenset(fragments)
        ordered = sorted(whole, key=len, reverse=True)
        self._whole = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE) if ordered else None

    def __bool__(self) -> bool:
        return bool(self._fragments) or self._whole is not None

    def __repr__(self) -> str:
        return "SecretMask(<hidden>)"

    def mask(self, text: str) -> str:
        """`text` with every masked run replaced by `***`."""
        if not self or not text:
            return text
        covered = bytearray(len(text))
        if self._fragments:
            folded = _fold(text)
            grams = self._fragments
            for start in range(len(folded) - FRAGMENT + 1):
                if folded[start : start + FRAGMENT] in grams:
                    covered[start : start + FRAGMENT] = b"\1" * FRAGMENT
        if self._whole is not None:
            for match in self._whole.finditer(text):
                covered[match.start() : match.end()] = b"\1" * (match.end() - match.start())
        if not any(covered):
            return text
        out: list[str] = []
        index = 0
        while index < len(text):
            if covered[index]:
                out.append(MASK)
                while index < len(text) and covered[index]:
                    index += 1
            else:
                out.append(text[index])
                index += 1
        return "".join(out)


NO_MASK: Final = SecretMask(())
