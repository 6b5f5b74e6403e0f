"""The libpq parameters users write in a PostgreSQL URL, honoured with asyncpg or refused by name.

`postgresql://user@host/db?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.crt&application_name=modeladapter`
means what libpq and psql make of it:

* `sslmode`: `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full` (asyncpg's `ssl`, with
  libpq's meaning). With `sslrootcert`, `require` verifies the server's certificate as `verify-ca` does
  (libpq does the same when a root certificate is given); `verify-full` also checks the host name.
* `sslrootcert`, `sslcert`, `sslkey`: PEM files for the server's CA and the client's certificate and key.
* `application_name`: shown in `pg_stat_activity`.
* `connect_timeout`: seconds (default 10).

`host`, `port`, `user`, `password`, `ssl` (asyncpg's own), `target_session_attrs` and
`prepared_statement_cache_size` go on to
SQLAlchemy and asyncpg as they are. Any other parameter, or a value these do not take, is refused with a
message that names it: the asyncpg error for an unknown keyword would not say which part of the URL is wrong.
With `sslcert`, TLS is required whatever `sslmode` says (but `disable`, refused): the certificate goes only
over TLS.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import URL

SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
CERTIFICATE_FILES: Final = ("sslrootcert", "sslcert", "sslkey")
PARAMETERS: Final = ("sslmode", *CERTIFICATE_FILES, "application_name", "connect_timeout")
PASSED_ON: Final = ("host", "port", "user", "password", "ssl", "target_session_attrs", "prepared_statement_cache_size")
"""Understood by SQLAlchemy's asyncpg dialect or asyncpg itself (a Unix socket's `host`, several hosts, asyncpg's
own `ssl`): passed on as they are, as before these parameters were checked."""
SECRET_PARAMETERS: Final = frozenset({"password", "sslpassword"})


class BadPostgresParameter(ValueError):
    """A parameter of a PostgreSQL URL that is unknown, or has a value it cannot take."""


def check_parameters(url: URL) -> dict[str, str]:
    """The URL's libpq parameters, each a single string value; `BadPostgresParameter` names any problem."""
    found: dict[str, str] = {}
    for name, value in url.query.items():
        if name in PASSED_ON:
            continue
        if name not in PARAMETERS:
            raise BadPostgresParameter(
                f"the PostgreSQL URL parameter {name!r} is not supported; use {', '.join(PARAMETERS + PASSED_ON)}"
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
    if "sslcert" in found and mode == "disable":
        raise BadPostgresParameter("sslcert needs TLS, and sslmode=disable turns it off")
    if "ssl" in url.query and ("sslmode" in found or "sslrootcert" in found or "sslcert" in found):
        raise BadPostgresParameter("ssl (asyncpg's) and sslmode/sslrootcert/sslcert (libpq's): give one kind")
    try:
        _ssl(mode or "prefer", found)  # files that are there but are no certificate, key or CA: say so now
    except (ssl.SSLError, OSError) as error:
        raise BadPostgresParameter(
            f"the TLS files given ({', '.join(sorted(found.keys() & set(CERTIFICATE_FILES)))}) cannot be used: {error}"
        ) from None
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
    return url.set(query={k: v for k, v in url.query.items() if k in PASSED_ON}), arguments


def _ssl(mode: str, found: dict[str, str]) -> ssl.SSLContext | str:
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and "sslrootcert" in found)
    if not (verify or "sslcert" in found):
        return mode  # asyncpg gives these libpq's meaning; without files there is no context to build
    # A client certificate is sent over TLS only: with it, `allow` and `prefer` ask for TLS as `require` does.
    context = ssl.create_default_context(cafile=_file(found.get("sslrootcert")))
    context.check_hostname = mode == "verify-full"
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    if "sslcert" in found:
        context.load_cert_chain(_file(found["sslcert"]) or "", _file(found.get("sslkey")))
    return context


def redacted(url: URL) -> str:
    """The URL as it may be shown: the password, and any `password`-like query parameter, masked."""
    hidden = {k: ("***" if k.lower() in SECRET_PARAMETERS else v) for k, v in url.query.items()}
    return url.set(query=hidden).render_as_string(hide_password=True)


def _file(value: str | None) -> str | None:
    return str(Path(value).expanduser()) if value is not None else None
