"""The libpq parameters users write in a PostgreSQL URL, honoured with asyncpg or refused by name.

`postgresql://user@host/db?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.crt&application_name=modeladapter`
means what libpq and psql make of it:

* `sslmode`: `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full` (asyncpg's `ssl`, with
  libpq's meaning). With `sslrootcert`, `require` verifies the server's certificate as `verify-ca` does
  (libpq does the same when a root certificate is given); `verify-full` also checks the host name.
* `sslrootcert`, `sslcert`, `sslkey`: PEM files for the server's CA and the client's certificate and key.
* `application_name`: shown in `pg_stat_activity`.
* `connect_timeout`: seconds (default 10).

Any other parameter, or a value these do not take, is refused with a message that names it: the asyncpg
error for an unknown keyword would not say which part of the URL is wrong.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import URL

SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
CERTIFICATE_FILES: Final = ("sslrootcert", "sslcert", "sslkey")
PARAMETERS: Final = ("sslmode", *CERTIFICATE_FILES, "application_name", "connect_timeout")


class BadPostgresParameter(ValueError):
    """A parameter of a PostgreSQL URL that is unknown, or has a value it cannot take."""


def check_parameters(url: URL) -> dict[str, str]:
    """The URL's libpq parameters, each a single string value; `BadPostgresParameter` names any problem."""
    found: dict[str, str] = {}
    for name, value in url.query.items():
        if name not in PARAMETERS:
            raise BadPostgresParameter(
                f"the PostgreSQL URL parameter {name!r} is not supported; use {', '.join(PARAMETERS)}"
            )
        if not isinstance(value, str):
            raise BadPostgresParameter(f"the PostgreSQL URL parameter {name!r} is given more than once")
        found[name] = value
    mode = found.get("sslmode")
    if mode is not None and mode not in SSL_MODES:
        raise BadPostgresParameter(f"sslmode={mode!r} is not one of {', '.join(SSL_MODES)}")
    for name in CERTIFICATE_FILES:
        if name in found and not Path(found[name]).expanduser().is_file():
            raise BadPostgresParameter(f"{name}={found[name]!r}: no such file")
    if ("sslcert" in found) != ("sslkey" in found):
        raise BadPostgresParameter("sslcert and sslkey go together: give both or neither")
    timeout = found.get("connect_timeout")
    if timeout is not None and not (timeout.isdigit() and int(timeout) > 0):
        raise BadPostgresParameter(f"connect_timeout={timeout!r} is not a whole number of seconds above 0")
    return found


def connect_arguments(url: URL) -> tuple[URL, dict[str, Any]]:
    """The URL without its libpq parameters, and the asyncpg connect arguments that mean the same."""
    found = check_parameters(url)
    arguments: dict[str, Any] = {}
    if "application_name" in found:
        arguments["server_settings"] = {"application_name": found["application_name"]}
    if "connect_timeout" in found:
        arguments["timeout"] = float(found["connect_timeout"])
    mode = found.get("sslmode")
    if mode is not None or "sslrootcert" in found or "sslcert" in found:
        arguments["ssl"] = _ssl(mode or "prefer", found)
    return url.set(query={}), arguments


def _ssl(mode: str, found: dict[str, str]) -> ssl.SSLContext | str:
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and "sslrootcert" in found)
    if mode in ("disable", "allow", "prefer") or not (verify or "sslcert" in found):
        return mode  # asyncpg gives these libpq's meaning; without files there is no context to build
    context = ssl.create_default_context(cafile=_file(found.get("sslrootcert")))
    context.check_hostname = mode == "verify-full"
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    if "sslcert" in found:
        context.load_cert_chain(_file(found["sslcert"]) or "", _file(found.get("sslkey")))
    return context


def _file(value: str | None) -> str | None:
    return str(Path(value).expanduser()) if value is not None else None
