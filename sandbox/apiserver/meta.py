"""Object metadata rules shared by every resource: names, labels, timestamps and MicroTime.

Pure functions; the clock is passed in. Messages are the ones `k8s.io/apimachinery/pkg/util/validation`
produces, so a client sees the same 422 text from the emulator as from a real server.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from modeladapter.sandbox.apiserver.errors import FieldError, FieldErrorType

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
_DNS1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_SUBDOMAIN}')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    f"end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{_LABEL}')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    f"is '{_DNS1035}')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    f"alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    f"'{_QUALIFIED_NAME}')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    f"start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    f"validation is '{_LABEL_VALUE}')"
)


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def subdomain_errors(value: str) -> list[str]:
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _matches(_SUBDOMAIN, value):
        problems.append(SUBDOMAIN_MESSAGE)
    return problems


def label_errors(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _matches(_LABEL, value):
        problems.append(LABEL_MESSAGE)
    return problems


def dns1035_errors(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _matches(_DNS1035, value):
        problems.append(DNS1035_MESSAGE)
    return problems


NAME_RULES = {"subdomain": subdomain_errors, "label": label_errors, "dns1035": dns1035_errors}


def name_field_errors(name: str, rule: str, path: str = "metadata.name") -> list[FieldError]:
    return [FieldError(FieldErrorType.INVALID, path, name, problem) for problem in NAME_RULES[rule](name)]


def qualified_name_errors(key: str) -> list[str]:
    """Label and annotation keys: an optional DNS subdomain prefix, a slash, and a name of at most 63."""
    prefix, _, name = key.rpartition("/")
    problems = []
    if "/" in key and not prefix:
        problems.append("prefix part must be non-empty")
    elif prefix:
        problems.extend("prefix part " + p for p in subdomain_errors(prefix))
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _matches(_QUALIFIED_NAME, name):
        problems.append(QUALIFIED_NAME_MESSAGE)
    return problems


def labels_field_errors(labels: object, path: str = "metadata.labels") -> list[FieldError]:
    if not isinstance(labels, dict):
        return []
    errors = []
    for key, value in labels.items():
        for problem in qualified_name_errors(str(key)):
            errors.append(FieldError(FieldErrorType.INVALID, path, key, problem))
        if isinstance(value, str):
            if len(value) > 63:
                errors.append(FieldError(FieldErrorType.INVALID, path, value, "must be no more than 63 characters"))
            if not _matches(_LABEL_VALUE, value):
                errors.append(FieldError(FieldErrorType.INVALID, path, value, LABEL_VALUE_MESSAGE))
    return errors


# --- time -----------------------------------------------------------------------------------------------------

_GENERATED_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generated_name(prefix: str) -> str:
    """`generateName` plus five characters from the alphabet the real server uses (no vowels, no 0/1/3)."""
    return prefix + "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(5))


def rfc3339(moment: datetime) -> str:
    """metav1.Time on the wire: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: datetime) -> str:
    """metav1.MicroTime on the wire: UTC, exactly six fractional digits, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_RFC3339_MICRO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})")


def parse_time(text: str, *, micro: bool) -> datetime | None:
    """Parse as Go's `time.Parse` with RFC3339 (any fraction) or the MicroTime layout (exactly six digits).

    None means the text is not in that layout; the caller turns that into a 400, as the real decoder does.
    """
    pattern = _RFC3339_MICRO if micro else _RFC3339
    if not pattern.fullmatch(text):
        return None
    try:
        fixed = text.replace("Z", "+00:00")
        head, dot, rest = fixed.partition(".")
        if dot:
            digits = re.match(r"\d+", rest)
            assert digits is not None
            fraction = digits.group(0)
            fixed = f"{head}.{(fraction + '000000')[:6]}{rest[len(fraction) :]}"
        return datetime.fromisoformat(fixed)
    except ValueError:
        return None


def normalise_time(text: str) -> str | None:
    """A metav1.Time as the server stores it: parsed, then written back as UTC whole seconds."""
    moment = parse_time(text, micro=False)
    return None if moment is None else rfc3339(moment)


def normalise_micro_time(text: str) -> str | None:
    moment = parse_time(text, micro=True)
    return None if moment is None else rfc3339_micro(moment)
