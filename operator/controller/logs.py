"""The operator's log lines: JSON for collectors or text for humans, tagged with the adapter being reconciled.

`configure_logging(level=..., fmt=...)` installs one handler on the root logger. Every record it writes
carries what `log_context` holds in the current task:

    with log_context(adapter="qwen-code-lora", namespace="default", uid=uid, reconcile_id=reconcile_id):
        log.info("loaded on %s", pod)     # {..., "adapter": "qwen-code-lora", "namespace": "default", ...}

The context lives in a `contextvars.ContextVar`, so it follows the code across `await` and into tasks created
inside the block, and never leaks from one adapter's worker to another's. Fields passed with
`extra={"pod": ...}` are written too (in a text line, only those with a value). The story of each adapter,
one line per event it records, is `modeladapter.operator.controller.story`'s.

`RedactingFilter` is a safety net, not the policy: secrets must never be logged in the first place (DESIGN
§6), but if a Bearer token, an API key or a database URL's password reaches a record anyway, it is masked
before the line is written, in the message, its arguments, extra fields and the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TextIO

from modeladapter.operator.controller.settings import LogFormat

MASK: Final = "***"
CONTEXT_FIELDS: Final = ("adapter", "namespace", "uid", "reconcile_id")

# The default is never changed: `log_context` sets a new mapping and resets the old one.
_context: ContextVar[Mapping[str, str]] = ContextVar("modeladapter_log_context", default=MappingProxyType({}))

# Attributes every LogRecord has; anything else on a record came from `extra=` and is written as a field.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", *CONTEXT_FIELDS,
}  # fmt: skip

_SECRETS: Final = (
    # `Authorization: Bearer <token>`, `bearer <token>`: the token, whatever alphabet it uses.
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"),
    # `scheme://user:password@host`: the password, up to the last `@` before the host.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s/]+(?=@)"),
    # `api-key: ...`, `"api_key": "..."`, `apiKey=...`: the value (engines' `additionalConfig["api-key"]`).
    re.compile(r"(?i)(\bapi[-_]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"),
)


def redact(text: str) -> str:
    """`text` with anything that looks like a Bearer token, an API key or a URL password replaced by `***`."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


# --- context ------------------------------------------------------------------------------------------------


@contextmanager
def log_context(
    *,
    adapter: str | None = None,
    namespace: str | None = None,
    uid: str | None = None,
    reconcile_id: str | None = None,
) -> Iterator[None]:
    """Tag every record logged inside the block (in this task and tasks it starts) with these fields.

    Nested blocks add to or override the outer one's fields; a field left as None keeps the outer value.
    `adapter` is the ModelAdapter's name, `namespace` its namespace: two fields, so that a collector can
    select on either.
    """
    given = {"adapter": adapter, "namespace": namespace, "uid": uid, "reconcile_id": reconcile_id}
    token = _context.set({**_context.get(), **{key: value for key, value in given.items() if value is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, str]:
    """The fields `log_context` has set for the code running now."""
    return _context.get()


class ContextFilter(logging.Filter):
    """Copies the current `log_context` onto each record (unless the call's `extra=` already set a field)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before this handler writes it; see `redact`.

    The record is changed in place, so handlers that run after this one see the masked record too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A broken format call: the handler reports it (never the caller), with the pieces masked.
            record.msg = redact(str(record.msg))
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_value(arg) for arg in record.args)
        else:
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRIBUTES or key in CONTEXT_FIELDS:
                setattr(record, key, _redact_value(value))
        return True


# --- formats ------------------------------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, the log context, extra fields, and
    `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        for key, value in _extra_fields(record).items():
            line.setdefault(key, value)
        exception = _exception_text(record)
        if exception:
            line["exception"] = exception
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-26T12:00:00.000Z INFO  modeladapter.operator.x [default/a reconcile=1f2e] message pod=p0`.

    Extra fields without a value (`pod=None` on a line about no pod) are left out."""

    def format(self, record: logging.LogRecord) -> str:
        tags = []
        adapter = getattr(record, "adapter", None)
        if adapter is not None:
            namespace = getattr(record, "namespace", None)
            tags.append(str(adapter) if namespace is None else f"{namespace}/{adapter}")
        reconcile_id = getattr(record, "reconcile_id", None)
        if reconcile_id is not None:
            tags.append(f"reconcile={reconcile_id}")
        parts = [_timestamp(record), f"{record.levelname:<5}", record.name]
        if tags:
            parts.append(f"[{' '.join(tags)}]")
        parts.append(record.getMessage())
        parts.extend(f"{key}={value}" for key, value in _extra_fields(record).items() if value is not None)
        text = " ".join(parts)
        exception = _exception_text(record)
        if exception:
            text += "\n" + exception
        if record.stack_info:
            text += "\n" + record.stack_info
        return text


class _OperatorHandler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs; its class marks it so that a second call replaces it."""


def make_handler(*, fmt: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler writing `fmt` lines, with the context and redaction filters attached."""
    handler = _OperatorHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    return handler


NOISY_LOGGERS: Final = ("httpx", "httpcore", "alembic", "aiohttp.access")


def configure_logging(*, level: str, fmt: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at `level` or above to `stream` (stderr) as `fmt` lines; returns the handler.

    Replaces the handler of an earlier call and leaves other handlers (pytest's, for one) alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _OperatorHandler):
            root.removeHandler(handler)
            handler.close()
    handler = make_handler(fmt=fmt, stream=stream)
    root.addHandler(handler)
    root.setLevel(level)
    # These libraries log every request (httpx) or every migration step (alembic) at INFO: at the
    # operator's INFO that drowns what it decides. Their warnings and errors still come through.
    for chatty in NOISY_LOGGERS:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return handler
