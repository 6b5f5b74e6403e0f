"""`verify` inside a pod: the pod's service account instead of a kubeconfig, as `modeladapter run` connects.

A pod has no kubeconfig; Kubernetes gives it `KUBERNETES_SERVICE_HOST`/`_PORT` and mounts its service
account's token and the cluster's CA at `SERVICE_ACCOUNT`. kubernetes-asyncio's in-cluster loader reads them
(and re-reads the token as the kubelet rotates it); the API is then reached over TLS, checked against that CA.
`kubectl exec deploy/modeladapter-operator -n modeladapter-system -- modeladapter verify` works so, with the
operator's own read access.

Without `-n`, the audit commands in such a pod work in the service account's namespace (its `namespace` file),
as kubectl does there; `default` if the file is absent or empty (`pod_namespace`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from modeladapter.operator.audit.eventlog import AuditError
from modeladapter.operator.cli.kubecontext import FALLBACK_NAMESPACE
from modeladapter.operator.kube.client import Kube

SERVICE_ACCOUNT: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's service account: `token`, `ca.crt`, `namespace`."""
VERIFY_TIMEOUT: Final = 10.0


def in_a_pod(environ: Mapping[str, str] | None = None) -> bool:
    """Kubernetes sets `KUBERNETES_SERVICE_HOST` in every container of a pod."""
    return bool((os.environ if environ is None else environ).get("KUBERNETES_SERVICE_HOST"))


def pod_namespace(service_account: Path | None = None) -> str:
    """The namespace of the pod's service account, as kubectl takes it in a pod; `default` without the file."""
    try:
        namespace = ((service_account or SERVICE_ACCOUNT) / "namespace").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return FALLBACK_NAMESPACE
    return namespace or FALLBACK_NAMESPACE


@asynccontextmanager
async def connect_in_cluster(service_account: Path | None = None) -> AsyncIterator[Kube]:
    # Loaded here, as `verifying.connect_cluster` does: the commands that only read the log never need it.
    from kubernetes_asyncio import client, config

    folder = service_account or SERVICE_ACCOUNT
    configuration = client.Configuration()
    try:
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration,
            token_filename=str(folder / "token"),
            cert_filename=str(folder / "ca.crt"),
        )
    except Exception as error:  # ConfigException, an unreadable file: one line for the user either way
        lines = str(error).strip().splitlines()
        raise AuditError(
            "no kubeconfig, and the pod's service account cannot be used "
            f"({lines[0] if lines else type(error).__name__}); pass --kubeconfig"
        ) from None
    kube = Kube(client.ApiClient(configuration), timeout=VERIFY_TIMEOUT)
    try:
        yield kube
    finally:
        await kube.close()
