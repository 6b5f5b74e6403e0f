"""The libpq parameters users write in a PostgreSQL URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
`application_name`, `connect_timeout`) mean what they mean to psql; anything else is refused by name."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from modeladapter.store.engine import BadDatabaseParameter, create_engine, normalize_url, redact_url
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
        ("options=-c%20search_path%3Dx", "the PostgreSQL URL parameter 'options' is not supported"),
    ],
    ids=["misspelt", "bad-mode", "twice", "missing-ca", "cert-without-key", "bad-timeout", "driver-option"],
)
def test_a_parameter_that_cannot_be_honoured_is_refused_by_name(query: str, message: str) -> None:
    with pytest.raises(BadDatabaseParameter) as refused:
        normalize_url(with_query(query).replace("postgresql://postgres@", "postgresql://postgres:pw@"))
    assert str(refused.value).startswith(message), str(refused.value)
    assert "pw" not in str(refused.value).split(" (in ")[1].replace("postgres:***", "")


def test_a_password_in_the_query_is_never_shown() -> None:
    with pytest.raises(BadDatabaseParameter) as refused:
        normalize_url(with_query("password=hunter2&sslmod=require"))
    assert "hunter2" not in str(refused.value) and "password=%2A%2A%2A" in str(refused.value)
    assert "hunter2" not in redact_url(with_query("password=hunter2"))


@pytest.mark.parametrize(
    "query", ["ssl=require", "host=/var/run/postgresql", "port=5433", "target_session_attrs=read-write"]
)
def test_what_sqlalchemy_and_asyncpg_understand_themselves_is_passed_on(query: str) -> None:
    bare, _ = connect_arguments(make_url(with_query(query)))
    assert dict(bare.query) == dict(make_url(with_query(query)).query)


def test_a_client_certificate_asks_for_tls_whatever_the_mode(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=modeladapter",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    for mode in ("", "sslmode=prefer&", "sslmode=allow&"):
        _, arguments = connect_arguments(make_url(with_query(f"{mode}sslcert={cert}&sslkey={key}")))
        assert isinstance(arguments["ssl"], ssl.SSLContext), mode
    with pytest.raises(BadDatabaseParameter, match="sslcert needs TLS"):
        normalize_url(with_query(f"sslmode=disable&sslcert={cert}&sslkey={key}"))
    with pytest.raises(BadDatabaseParameter, match="cannot be used"):
        normalize_url(with_query(f"sslcert={CA}&sslkey={CA}"))  # a CA bundle is no client key


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
