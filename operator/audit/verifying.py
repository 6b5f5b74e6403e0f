"""`verify`: does the cluster show what the log says? The one audit command that also reads the cluster.

It compares the fold of each live stream with the ModelAdapter's `status`, through the same `project_status`
the operator writes it with. The operator appends first and patches `status` right after, so a verify racing
an active operator can catch the two between those steps: it reports what it saw, and marks a drift whose
stream moved on during the check, instead of retrying until the drift goes away.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from modeladapter.fsm.events import RecordedEvent
from modeladapter.fsm.state import AdapterState, FoldError, fold
from modeladapter.operator.api.status import StatusDocument, project_status
from modeladapter.store import SqlEventStore, StreamInfo
from modeladapter.store.queries import (
    EventFilter,
    find_events,
)

if TYPE_CHECKING:
    from modeladapter.operator.kube.client import Kube, Raw

from modeladapter.operator.audit.drifts import Drift, Verification
from modeladapter.operator.audit.engine_check import check_engines
from modeladapter.operator.audit.eventlog import AuditError, first_line
from modeladapter.operator.audit.integrity import check_streams

SANDBOX_KUBECONFIG: Final = Path(".modeladapter") / "kubeconfig"
"""Where `modeladapter sandbox` writes its kubeconfig (relative to the directory it runs in)."""


VERIFIED_FIELDS: Final = ("phase", "instances", "readyReplicas", "observedGeneration", "placements")
"""The `status` fields that are a function of the log alone (candidates and desiredReplicas count pods)."""
MOVED_ON: Final = "the log moved on during the check (an operator is active); re-run verify to see if it persists"


def default_kubeconfig(environ: Mapping[str, str] | None = None) -> Path:
    """$KUBECONFIG (its first existing file), else the sandbox's ./.modeladapter/kubeconfig, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = [Path(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return next((p for p in listed if p.is_file()), listed[0])
    if SANDBOX_KUBECONFIG.is_file():
        return SANDBOX_KUBECONFIG
    return Path.home() / ".kube" / "config"


@asynccontextmanager
async def connect_cluster(kubeconfig: Path, context: str | None = None) -> AsyncIterator[Kube]:
    # Only verify talks to the cluster: the Kubernetes client (a third of the start-up time) is loaded here.
    from kubernetes_asyncio import client, config

    from modeladapter.operator.kube.client import Kube

    if not kubeconfig.is_file():
        raise AuditError(f"no kubeconfig at {kubeconfig}; pass --kubeconfig or set KUBECONFIG")
    configuration = client.Configuration()
    try:
        await config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration)
    except Exception as error:  # ConfigException, malformed YAML, missing keys...: all one line for the user
        raise AuditError(f"cannot use the kubeconfig {kubeconfig}: {first_line(error)}") from None
    kube = Kube(client.ApiClient(configuration), timeout=10.0)
    try:
        yield kube
    finally:
        await kube.close()


async def verify(
    store: SqlEventStore, kube: Kube, *, namespace: str | None, now: datetime, engines: bool = False
) -> Verification:
    """Every live stream's fold against its ModelAdapter's `status`, and adapters only one side knows; with
    `engines`, also what each engine serves against the log, deleted adapters included (`engine_check`)."""
    from modeladapter.operator.kube.client import MODELADAPTERS, KubeError, Unreachable

    await check_streams(store, namespace=namespace)
    live = [s for s in await store.streams(namespace=namespace) if s.finalized_at is None]
    recorded = await find_events(store, EventFilter(namespace=namespace))
    by_stream: dict[str, list[RecordedEvent]] = {}
    for event in recorded:
        by_stream.setdefault(event.stream_id, []).append(event)
    try:
        states = {s.stream_id: fold(by_stream.get(s.stream_id, [])) for s in live}
    except FoldError as error:  # events that no operator could have recorded: a damaged log
        raise AuditError(f"cannot fold the log to compare it with the cluster: {error}") from None
    try:
        adapters, _ = await kube.list(MODELADAPTERS, namespace)
    except Unreachable as error:
        raise AuditError(
            f"cannot reach the Kubernetes API server at {kube.api.configuration.host}: {error.message}"
        ) from None
    except KubeError as error:
        raise AuditError(f"cannot list ModelAdapters at {kube.api.configuration.host}: {error}") from None
    in_cluster = {str(a["metadata"]["uid"]): a for a in adapters}
    drifts: list[Drift] = []
    for stream in live:
        adapter = in_cluster.get(stream.stream_id)
        if adapter is None:
            drifts.append(
                Drift(
                    stream.namespace,
                    stream.name,
                    stream.stream_id,
                    "adapter",
                    _summary(states[stream.stream_id]),
                    None,
                    "in the log (not finalized) but not in the cluster",
                )
            )
            continue
        drifts.extend(_compare(states[stream.stream_id], adapter, now))
    logged = {s.stream_id for s in live}
    for uid, adapter in in_cluster.items():
        metadata = adapter["metadata"]
        if uid not in logged and not _finalized_here(
            uid, await store.streams(namespace=metadata["namespace"], name=metadata["name"])
        ):
            phase = (adapter.get("status") or {}).get("phase")
            drifts.append(
                Drift(
                    metadata["namespace"],
                    metadata["name"],
                    uid,
                    "adapter",
                    None,
                    f"phase {phase or '(none)'}",
                    "in the cluster but not in the log (not reconciled yet, or another event log)",
                )
            )
    if engines:
        every = await store.streams(namespace=namespace)
        try:
            folded = {s.stream_id: states.get(s.stream_id) or fold(by_stream.get(s.stream_id, [])) for s in every}
        except FoldError as error:
            raise AuditError(f"cannot fold the log to compare it with the engines: {error}") from None
        drifts.extend(await check_engines(kube, every, folded, by_stream, in_cluster))
    moved = await _moved_on(store, namespace, {s.stream_id: states[s.stream_id].version for s in live})
    drifts = [
        Drift(d.namespace, d.name, d.uid, d.field, d.log, d.cluster, d.note or MOVED_ON) if d.uid in moved else d
        for d in drifts
    ]
    checked = sum(1 for s in live if s.stream_id in in_cluster)
    return Verification(checked, sorted(drifts, key=lambda d: (d.namespace, d.name, d.uid, d.field)))


def _finalized_here(uid: str, streams: Sequence[StreamInfo]) -> bool:
    # A finalized stream whose object is still there: the finalizer was removed a moment ago, the object
    # is on its way out; that is not a drift.
    return any(s.stream_id == uid and s.finalized_at is not None for s in streams)


async def _moved_on(store: SqlEventStore, namespace: str | None, versions: Mapping[str, int]) -> set[str]:
    """Streams whose version is no longer the one that was folded."""
    return {
        s.stream_id
        for s in await store.streams(namespace=namespace)
        if s.stream_id in versions and s.version != versions[s.stream_id]
    }


def _summary(state: AdapterState) -> str:
    return f"phase {state.phase.value if state.phase else '(none)'}, version {state.version}"


def _compare(state: AdapterState, adapter: Raw, now: datetime) -> list[Drift]:
    metadata = adapter["metadata"]
    namespace, name, uid = str(metadata["namespace"]), str(metadata["name"]), str(metadata["uid"])
    status = cast(StatusDocument, adapter.get("status") or {})
    wanted = project_status(
        state,
        namespace=namespace,
        name=name,
        generation=state.generation,
        candidates=int(status.get("candidates") or 0),
        desired=int(status.get("desiredReplicas") or 0),
        current=status,
        now=now,
    )
    drifts = [
        Drift(namespace, name, uid, key, wanted[key], status.get(key))
        for key in VERIFIED_FIELDS
        if wanted[key] != status.get(key)
    ]
    shown = {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    for condition in wanted["conditions"]:
        kind = str(condition["type"])
        expected = _verdict(condition)
        actual = _verdict(shown[kind]) if kind in shown else None
        if expected != actual:
            drifts.append(Drift(namespace, name, uid, f"conditions[{kind}]", expected, actual))
    return drifts


def _verdict(condition: Mapping[str, Any]) -> dict[str, Any]:
    """What a condition says; its times are bookkeeping, not part of the verdict."""
    return {key: condition.get(key) for key in ("status", "reason", "message")}


# --- stuck and stats ------------------------------------------------------------------------------------------
