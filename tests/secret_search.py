"""Searching text for a secret in the forms a leak takes: fragments in any ASCII case, and inside base64."""

from __future__ import annotations

import base64
import re

BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}")


def leaked_fragment(value: str, text: str, length: int) -> str | None:
    """A run of `length` characters of `value` (ASCII case ignored) that `text` still holds, if any."""
    folded_value, folded_text = value.lower(), text.lower()
    for start in range(len(folded_value) - length + 1):
        if folded_value[start : start + length] in folded_text:
            return value[start : start + length]
    return None


def decoded_base64_runs(text: str) -> str:
    """What every run of base64 characters in `text` decodes to, read from each of the four alignments."""
    decoded = []
    for run in BASE64_RUN.findall(text):
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            decoded.append(base64.b64decode(chunk).decode("latin-1"))
    return "\n".join(decoded)


def secret_in(value: str, text: str, length: int) -> str | None:
    """A fragment of `value` of `length` characters found in `text` as it is or base64-decoded, if any."""
    return leaked_fragment(value, text, length) or leaked_fragment(value, decoded_base64_runs(text), length)
