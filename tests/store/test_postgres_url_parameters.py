"""The libpq parameters users write in a PostgreSQL URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
`application_name`, `connect_timeout`) mean what they mean to psql; anything else is refused by name."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from modeladapter.store.engine import BadDatabaseParameter, create_engine, normalize_url
from modeladapter.store.postgres_url import connect_arguments
from tests.conftest import POSTGRES_URL

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def with_query(query: str) -> str:
    return f"{POSTGRES_URL}?{query}"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmod=require", "the PostgreSQL URL parameter 'sslmod' is not supported; use sslmode, sslrootcert"),
        ("sslmode=on", "sslmode='on' is not one of disable, allow, prefer, require, verify-ca, verify-full"),
        ("sslmode=require&sslmode=disable", "the PostgreSQL URL parameter 'sslmode' is given more than once"),
        ("sslrootcert=/no/such/ca.pem", "sslrootcert='/no/such/ca.pem': no such file"),
        (f"sslcert={CA}", "sslcert and sslkey go together: give both or neither"),
        ("connect_timeout=soon", "connect_timeout='soon' is not a whole number of seconds above 0"),
        ("prepared_statement_cache_size=0", "the PostgreSQL URL parameter 'prepared_statement_cache_size'"),
    ],
    ids=["misspelt", "bad-mode", "twice", "missing-ca", "cert-without-key", "bad-timeout", "driver-option"],
)
def test_a_parameter_that_cannot_be_honoured_is_refused_by_name(query: str, message: str) -> None:
    with pytest.raises(BadDatabaseParameter) as refused:
        normalize_url(with_query(query).replace("postgresql://postgres@", "postgresql://postgres:pw@"))
    assert str(refused.value).startswith(message), str(refused.value)
    assert "pw" not in str(refused.value).split(" (in ")[1].replace("postgres:***", "")


def test_the_modes_and_files_become_what_asyncpg_needs() -> None:
    _, plain = connect_arguments(make_url(with_query("sslmode=require&application_name=ops&connect_timeout=3")))
    assert plain == {"ssl": "require", "server_settings": {"application_name": "ops"}, "timeout": 3.0}
    bare, verifying = connect_arguments(make_url(with_query(f"sslmode=verify-full&sslrootcert={CA}")))
    context = verifying["ssl"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED and not bare.query
    _, ca_only = connect_arguments(make_url(with_query(f"sslmode=verify-ca&sslrootcert={CA}")))
    assert not ca_only["ssl"].check_hostname and ca_only["ssl"].verify_mode is ssl.CERT_REQUIRED
    _, root_given = connect_arguments(make_url(with_query(f"sslmode=require&sslrootcert={CA}")))
    assert root_given["ssl"].verify_mode is ssl.CERT_REQUIRED, "libpq: require with a root certificate verifies it"


async def server_offers_tls() -> bool:
    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text("SHOW ssl"))).scalar() == "on"
    finally:
        await engine.dispose()


async def session(url: str) -> tuple[str, bool]:
    """The application name and whether the session is encrypted, as the server sees them."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                        "WHERE a.pid = pg_backend_pid()"
                    )
                )
            ).one()
            return str(row[0]), bool(row[1])
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require"])
async def test_each_mode_means_what_it_means_to_libpq(mode: str) -> None:
    tls = await server_offers_tls()
    url = with_query(f"sslmode={mode}&application_name=modeladapter-{mode}")
    if mode == "require" and not tls:
        with pytest.raises(ConnectionError):  # never a silent fall-back to an unencrypted session
            await session(url)
        return
    name, encrypted = await session(url)
    assert name == f"modeladapter-{mode}"
    assert encrypted is (tls and mode in ("prefer", "require")), (mode, tls)
