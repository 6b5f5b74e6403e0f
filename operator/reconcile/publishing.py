"""The reconcile's one write path for what users and gateways read: the Service and EndpointSlice (and, when
asked, the HTTPRoute), `status`, and the retry annotations.

* `endpoints`: the EndpointSlice lists exactly the verified instances (the Service is created with it; both
  belong to the adapter). A Service of the adapter's name that belongs to something else is never taken over:
  a Warning Event `ServiceConflict` says so, where a person looks.
* `status`: `/status` is patched only where the projection (`modeladapter.operator.api.status`) differs from
  what the object shows, and the retry annotations only where they differ. The status written is remembered
  (`StatusEchoes`) before the patch, since its echo may come back through the watch before the call returns.
* `before_calls`: in the middle of a pass, before engine calls that may take the whole engine timeout (or
  never return, if the process dies), the instances as the log has them go out if they changed: a lost pod
  leaves the EndpointSlice and the status before its reload or unload starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from modeladapter.fsm.calls import plan_endpoints
from modeladapter.fsm.events import OwnedObjectRestored
from modeladapter.operator.api.pods import ObservedPod
from modeladapter.operator.api.status import StatusDocument, project_status, retry_annotations
from modeladapter.operator.api.view import AdapterObject
from modeladapter.operator.kube.client import MODELADAPTERS, KubeApi, KubeError, NotFound
from modeladapter.operator.kube.events import EventRecorder, Notice
from modeladapter.operator.kube.routes import ensure_http_route
from modeladapter.operator.kube.services import Endpoint, NotOurs, Restoration, ensure_service
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.passes import Pass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Counts:
    candidates: int
    """Healthy pods the selector matches."""
    desired: int


class Publisher:
    def __init__(
        self,
        kube: KubeApi,
        recorder: EventRecorder,
        echoes: StatusEchoes,
        *,
        route_parent: tuple[str | None, str] | None = None,
    ) -> None:
        self.kube = kube
        self.recorder = recorder
        self.echoes = echoes
        self.route_parent = route_parent
        """The Gateway each adapter's HTTPRoute attaches to; None: no HTTPRoutes."""
        self._routes_written: set[str] = set()
        """Adapters (uids) whose route this process wrote or found: only for those is a missing route one that
        someone else deleted (the flag newly on, or the CRDs installed late, is a first publication)."""

    async def endpoints(self, step: Pass, adapter: AdapterObject, pods: Mapping[str, ObservedPod]) -> bool:
        """The Service and EndpointSlice list exactly the instances (never created empty); the addresses are
        recorded (`ServiceBound`) when they changed. True when every instance is listed, and there is one."""
        endpoints = [
            Endpoint(pod=name, ip=pods[name].ip or "", uid=pods[name].uid)
            for name in step.state.instances
            if name in pods and pods[name].ip
        ]
        if not endpoints and step.state.endpoints is None:
            return False
        try:
            restorations = await ensure_service(
                self.kube,
                adapter,
                endpoints,
                port=adapter.engine_port,
                published=step.state.endpoints is not None,
            )
        except KubeError as error:
            log.warning("service for %s not in place: %s", adapter.ref.key, error)
            if isinstance(error, NotOurs) and adapter.ref.resource_version:
                # Only a person can settle this: say it where they look (`kubectl describe`), not only in our log.
                message = f"{error.message}; the adapter stays Bound until it is renamed or removed"
                await self.recorder.record(adapter.ref, [Notice("Warning", "ServiceConflict", message)])
            return False
        if self.route_parent is not None:
            restorations += await self._route(adapter)
        # Each is one WARNING line of the adapter's story once appended (`modeladapter.operator.controller.story`).
        restored = [OwnedObjectRestored(kind=r.kind, name=adapter.ref.name, change=r.change) for r in restorations]
        step.take(
            plan_endpoints(
                step.state,
                service=adapter.ref.name,
                addresses=[e.ip for e in endpoints],
                now=step.now,
                restored=restored,
            )
        )
        return bool(endpoints) and len(endpoints) == len(step.state.instances)

    def forget(self, uid: str) -> None:
        """The adapter's stream ended: nothing more is published for it."""
        self._routes_written.discard(uid)

    async def _route(self, adapter: AdapterObject) -> list[Restoration]:
        """The adapter's HTTPRoute in place. A route the API refuses does not hold the adapter back: the Service
        serves without it; the refusal is said where a person looks, and the next pass tries again."""
        assert self.route_parent is not None
        uid = adapter.ref.uid
        try:
            restored = await ensure_http_route(
                self.kube, adapter, port=adapter.engine_port, parent=self.route_parent,
                published=uid in self._routes_written,
            )  # fmt: skip
            self._routes_written.add(uid)
            return restored
        except KubeError as error:
            log.warning("HTTPRoute for %s not in place: %s", adapter.ref.key, error)
            if adapter.ref.resource_version:
                notice = Notice(
                    "Warning", "HTTPRouteNotPublished", f"HTTPRoute not published: {error.message or error}"
                )
                await self.recorder.record(adapter.ref, [notice])
            return []

    async def status(self, step: Pass, adapter: AdapterObject, counts: Counts, *, annotations: bool = True) -> None:
        """`/status` (and the retry annotations) as the log has them, where they differ from the object."""
        ref = adapter.ref
        current = step.shown
        status = project_status(
            step.state,
            namespace=ref.namespace,
            name=ref.name,
            generation=adapter.generation,
            candidates=counts.candidates,
            desired=counts.desired,
            current=current,
            now=step.now,
        )
        try:
            if any(current.get(key) != value for key, value in status.items()):
                self.echoes.wrote(ref.uid, status)
                await self.kube.patch(MODELADAPTERS, ref.namespace, ref.name, {"status": status}, subresource="status")
                step.shown = StatusDocument(**{**current, **status})
            if not annotations:
                return
            retries = retry_annotations(step.state, adapter.annotations)
            if retries and not adapter.deleting:
                await self.kube.patch(MODELADAPTERS, ref.namespace, ref.name, {"metadata": {"annotations": retries}})
        except NotFound:
            pass  # deleted meanwhile; the watch brings the news
        except KubeError as error:
            log.warning("could not write the status of %s: %s", ref.key, error)

    async def before_calls(
        self,
        step: Pass,
        adapter: AdapterObject,
        pods: Mapping[str, ObservedPod],
        counts: Counts,
        *,
        calling: Iterable[str] = (),
        drain: timedelta = timedelta(0),
    ) -> bool:
        """If the instances changed: the EndpointSlice (where it lists others) and the status, without the retry
        annotations (they wait for the end of the pass). True when the EndpointSlice, as last written, lists
        no pod but the instances: a pod about to be updated or unloaded is out of it.

        `calling`: the pods whose engine is about to stop serving the adapter. If one of them has just left the
        EndpointSlice, this waits `drain` before returning: a gateway follows the slice a moment later, and a
        request it still sends there must find the adapter."""
        listed_ok = True
        if step.state.endpoints is not None:
            listed = {pods[name].ip for name in step.state.instances if name in pods and pods[name].ip}
            if not set(step.state.endpoints) <= listed:
                before = set(step.state.endpoints)
                await self.endpoints(step, adapter, pods)
                listed_ok = set(step.state.endpoints or ()) <= listed
                left = before - set(step.state.endpoints or ())
                draining = {str(pods[name].ip) for name in calling if name in pods and pods[name].ip} & left
                if listed_ok and draining and drain > timedelta(0):
                    log.info("%s: %s left the EndpointSlice; draining for %ss", adapter.ref.key,
                             ", ".join(sorted(draining)), f"{drain.total_seconds():g}")  # fmt: skip
                    await asyncio.sleep(drain.total_seconds())
        if list(step.state.instances) != list(step.shown.get("instances") or []):
            await self.status(step, adapter, counts, annotations=False)
        return listed_ok
