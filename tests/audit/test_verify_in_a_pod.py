"""`modeladapter verify` inside the operator's pod: no kubeconfig, the pod's service account instead.

The pod is simulated as Kubernetes makes one: `KUBERNETES_SERVICE_HOST`/`_PORT` in the environment, and a
service-account folder with `token`, `ca.crt` and `namespace` (here a temporary folder, put where the real
one is mounted through `incluster.SERVICE_ACCOUNT`). The API is served over TLS, as in a cluster: a TLS front
(a throwaway CA from trustme) before the emulator, which checks the bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from modeladapter.operator.cli import incluster
from tests.audit.conftest import ProducedLog, Run, document, one_line_error


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def _tls_front(log: ProducedLog, certificate: trustme.LeafCert) -> Iterator[int]:
    """A TLS listener on loopback that forwards each connection to the emulator; its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(log.server.host, log.server.port)
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

    async def start() -> asyncio.Server:
        return await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)

    server = log.world.run(start())
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:

        async def stop() -> None:
            server.close()

        log.world.run(stop())


@pytest.fixture
def pod(produced_log: ProducedLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process as a container of the operator's pod: in-cluster variables and a service account, no kubeconfig."""
    authority = trustme.CA()
    account = tmp_path / "serviceaccount"
    account.mkdir()
    authority.cert_pem.write_to_path(str(account / "ca.crt"))
    (account / "token").write_text(produced_log.server.token)
    (account / "namespace").write_text("modeladapter-system")
    home = tmp_path / "home"
    home.mkdir()
    with _tls_front(produced_log, authority.issue_cert("127.0.0.1")) as port:
        monkeypatch.delenv("KUBECONFIG", raising=False)
        monkeypatch.setenv("HOME", str(home))  # no ~/.kube/config
        monkeypatch.chdir(tmp_path)  # no sandbox kubeconfig in the working directory
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(port))
        monkeypatch.setattr(incluster, "SERVICE_ACCOUNT", account)
        yield account


def test_verify_connects_with_the_pod_s_service_account_over_tls(
    produced_log: ProducedLog, modeladapter: Run, pod: Path
) -> None:
    result = document(modeladapter, "verify", "-A", "--database-url", produced_log.database_url)
    assert result["in_sync"] is True and result["adapters_checked"] == 6


class TestTheNamespace:
    """In a pod without a kubeconfig, kubectl's default namespace is the service account's (its `namespace` file)."""

    def test_an_explicit_n_is_the_one_compared(self, produced_log: ProducedLog, modeladapter: Run, pod: Path) -> None:
        result = document(modeladapter, "verify", "-n", "team-b", "--database-url", produced_log.database_url)
        assert result["in_sync"] is True and result["adapters_checked"] == 2, "team-b's two, not the pod's namespace's"

    def test_without_n_it_is_the_service_account_s(
        self, produced_log: ProducedLog, modeladapter: Run, pod: Path
    ) -> None:
        (pod / "namespace").write_text("team-b")
        result = document(modeladapter, "verify", "--database-url", produced_log.database_url)
        assert result["in_sync"] is True and result["adapters_checked"] == 2, "team-b's two, not default's four"
        stuck = document(modeladapter, "stuck", "--for", "0s", "--database-url", produced_log.database_url)
        assert {(s["namespace"], s["name"]) for s in stuck} == {("team-b", "waiting"), ("team-b", "broken")}

    def test_without_n_or_a_namespace_file_it_is_default(
        self, produced_log: ProducedLog, modeladapter: Run, pod: Path
    ) -> None:
        (pod / "namespace").unlink()
        result = document(modeladapter, "verify", "--database-url", produced_log.database_url)
        assert result["adapters_checked"] == 4, "default's four adapters"


def test_a_token_the_api_server_refuses_is_one_line(produced_log: ProducedLog, modeladapter: Run, pod: Path) -> None:
    (pod / "token").write_text("not-the-token")
    error = one_line_error(modeladapter("verify", "-A", "--database-url", produced_log.database_url))
    assert error.startswith("modeladapter verify: ") and ("401" in error or "Unauthorized" in error), error


def test_an_unreadable_service_account_is_one_line(produced_log: ProducedLog, modeladapter: Run, pod: Path) -> None:
    (pod / "token").unlink()
    error = one_line_error(modeladapter("verify", "-A", "--database-url", produced_log.database_url))
    assert "the pod's service account cannot be used" in error and "--kubeconfig" in error
