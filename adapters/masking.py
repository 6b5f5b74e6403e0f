"""Masking secret values in what an engine or a proxy sends back: pure. The engine clients parse answers as
they came, and mask the text that leaves them in a message (an error, an excerpt) before they cut it.

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
would garble every text (and no real key or token is that short). A masked run becomes `***`. Where a value
is echoed in one of these forms, at most `FRAGMENT - 1` characters of it are left, never enough to guess it.
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
    """The forms of `value` that an engine or a proxy plausibly sends back (base64 at the three alignments
    covers `Bearer VALUE` and any longer encoded text)."""
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        *_base64_cores(value),
    }
    return {form for form in forms if form}


class SecretMask:
    """Masks every form of some secret values; values of `FRAGMENT` characters or more also in fragments.

    Masks combine with `|`. Cost: building one takes about 0.1 ms for a 50-character key; masking a text is
    one set lookup per character, so callers mask the messages that leave, never whole answers."""

    __slots__ = ("_fragments", "_options", "_options_re", "_short", "_short_re", "reach")
    reach: int

    def __init__(self, values: Iterable[str] = (), *, whole_only: Iterable[str] = ()) -> None:
        """`values`: secrets (keys, tokens, credentials); `whole_only`: values masked only whole and exactly
        as written, letter case included (settings that now and then hold a token, where masking fragments
        would garble text)."""
        fragments: set[str] = set()
        short: set[str] = set()
        options = frozenset(v for v in whole_only if len(v) >= SHORTEST)
        reach = max((len(v) for v in options), default=0)
        for value in values:
            if len(value) < SHORTEST:
                continue
            for form in echoed_forms(value):
                reach = max(reach, len(form))
                if len(value) >= FRAGMENT and len(form) >= FRAGMENT:
                    folded = _fold(form)
                    fragments.update(folded[i : i + FRAGMENT] for i in range(len(folded) - FRAGMENT + 1))
                else:
                    short.add(form)
        self._init(frozenset(fragments), frozenset(short), options, reach)

    def _init(self, fragments: frozenset[str], short: frozenset[str], options: frozenset[str], reach: int) -> None:
        self._fragments, self._short, self._options = fragments, short, options
        self._short_re = _alternation(short, re.IGNORECASE)
        self._options_re = _alternation(options, 0)
        self.reach = reach
        """The longest masked form: masking this much past a cut, then cutting, never leaves a secret's start."""

    def __or__(self, other: SecretMask) -> SecretMask:
        joined = SecretMask()
        joined._init(
            self._fragments | other._fragments,
            self._short | other._short,
            self._options | other._options,
            max(self.reach, other.reach),
        )
        return joined

    def __bool__(self) -> bool:
        return bool(self._fragments or self._short or self._options)

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
        for pattern in (self._short_re, self._options_re):
            if pattern is not None:
                for match in pattern.finditer(text):
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

    def shown(self, text: str, limit: int) -> str:
        """`text` as it may leave in a message: masked first, then cut to `limit` characters (with `...`), so
        that a cut never leaves a secret's first characters unmasked."""
        window = text[: limit + self.reach] if len(text) > limit else text
        masked = self.mask(window)
        return masked[:limit] + "..." if len(masked) > limit or len(window) < len(text) else masked


def _alternation(values: frozenset[str], flags: int) -> re.Pattern[str] | None:
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered), flags) if ordered else None


NO_MASK: Final = SecretMask(())
