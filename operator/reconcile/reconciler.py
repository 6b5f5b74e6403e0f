"""`reconcile(uid)`: read the world, decide through the state machines, act, append once, project the status.

Level-triggered, controller-runtime style: a reconcile is told only which ModelAdapter to look at. It reads
the object and its pods from the informers' caches and its history from the event log (folded, cached per
uid and topped up with new events), then walks through the steps below. Every decision is a `decide()` on
the folded state, so the log records what was observed (facts) and what was concluded (decisions); the
phase follows the placements one documented edge at a time (`modeladapter.fsm.progress`).

1. **spec**: a new generation is recorded (`SpecObserved`) and checked (`parse_spec`); a problem, or a
   referenced Secret that does not exist, fails the adapter with a condition naming the field.
2. **deletion**: with a deletionTimestamp every placement is unloaded (bounded by a deadline; a pod that is
   gone counts as unloaded), `Finalized` is appended, and only then the finalizer is removed.
3. **pods**: placements whose pod is gone are retired (`pod_gone`); unhealthy ones are lost at once (so they
   leave `instances`); pods that no longer match the selector are unloaded.
4. **verification**: loaded placements are re-checked against the engine's `/v1/models` every
   `verify_interval` (and after every restart); a missing adapter (eviction, engine restart) or an
   unreachable engine is lost, then reloaded.
5. **scheduling**: retries that are due are retried; exhausted pods that rested are reconsidered; missing
   replicas are placed by the adapter's policy on stable, healthy pods with room (a switch away from an
   exhausted or lost pod is a `PodSwitched`); surplus replicas are unloaded.
6. **engine calls**: loads and unloads run concurrently, their outcomes become facts.
7. **service**: with instances, the Service and EndpointSlice list exactly their IPs.
8. **append, status, events**: one `append` of everything, then `/status` and the retry annotations are
   patched if the projection changed, and Events are recorded.

It returns when to look again: the earliest retry, reconsideration, verification or stability deadline.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from modeladapter.adapters import outcomes
from modeladapter.adapters.base import EngineClient, LoadRequest
from modeladapter.adapters.connections import EngineConnections
from modeladapter.adapters.outcomes import EngineError, Verification
from modeladapter.adapters.selection import select_engine
from modeladapter.fsm.backoff import BackoffPolicy
from modeladapter.fsm.events import (
    AdapterEvent,
    Finalized,
    LoadFailed,
    LoadSucceeded,
    PhaseChanged,
    PodSwitched,
    ServiceBound,
    SpecObserved,
    SpecRejected,
    stamp,
)
from modeladapter.fsm.facts import Facts
from modeladapter.fsm.health import PodHealth, assess_pod, stable_since
from modeladapter.fsm.machine import TransitionRejected, decide
from modeladapter.fsm.phases import Phase, PhaseTrigger, PlacementState, PlacementTrigger, Trigger
from modeladapter.fsm.progress import next_trigger
from modeladapter.fsm.scheduling import Candidate, choose_pods
from modeladapter.fsm.state import AdapterState, Placement, advance, fold
from modeladapter.fsm.table import PHASE_TABLE
from modeladapter.operator.controller.cluster import ClusterView
from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS, Kube, KubeError, NotFound, Raw
from modeladapter.operator.controller.logs import log_context
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.api.pods import ObservedPod, observe_pod
from modeladapter.operator.kube.events import EventRecorder, Notice, events_for
from modeladapter.operator.kube.services import Endpoint, NotOurs, ensure_service
from modeladapter.operator.api.spec import AdapterSpec, SpecProblem, parse_spec
from modeladapter.operator.api.status import project_status, ready_message, retry_annotations, scheduled_message
from modeladapter.store import ConcurrencyConflict, SqlEventStore

log = logging.getLogger(__name__)

FINALIZER: Final = "adapter.model.aibrix.ai/finalizer"
PORT_LABEL: Final = "model.aibrix.ai/port"
S, U = PlacementState, PlacementTrigger
_MAY_HOLD: Final = frozenset({S.LOADING, S.BACKOFF, S.LOADED, S.EXHAUSTED, S.LOST})


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    stability_window: timedelta = timedelta(seconds=5)
    backoff: BackoffPolicy = BackoffPolicy()
    verify_interval: timedelta = timedelta(seconds=30)
    unload_timeout: timedelta = timedelta(seconds=60)
    """How long deletion waits for a failing unload before it gives up on that pod."""
    secret_retry: timedelta = timedelta(seconds=15)
    runtime_sidecar: bool = False


@dataclass(slots=True)
class _Pass:
    """One reconcile's working memory: the state so far, what it decided, and which loads it started."""

    base: AdapterState
    """The state as the log has it: the append expects this version."""
    now: datetime
    backoff: BackoffPolicy
    namespace: str
    name: str
    reconcile_id: str
    state: AdapterState = field(init=False)
    payloads: list[AdapterEvent] = field(default_factory=list)
    appended: list[AdapterEvent] = field(default_factory=list)
    loading: set[str] = field(default_factory=set)
    """Pods this pass moved into Loading: each needs a load call."""
    status: dict[str, Any] | None = None
    """The status as this pass last wrote it (None: as the object had it when the pass began)."""

    def __post_init__(self) -> None:
        self.state = self.base

    def tick(self, now: datetime) -> None:
        """Move the pass's clock after waiting on engines: outcomes are recorded, and backoffs measured, from
        when they happened, not from when the pass began (a 5 s timeout must not eat a 5 s backoff)."""
        self.now = max(self.now, now)

    def record(self, *facts: AdapterEvent) -> None:
        self.payloads.extend(facts)
        self.state = advance(self.state, facts, at=self.now)

    def decide(self, trigger: Trigger, **facts: Any) -> bool:
        try:
            events = decide(self.state, trigger, Facts(now=self.now, backoff=self.backoff, **facts))
        except TransitionRejected as rejected:
            log.debug("not decided: %s", rejected)
            return False
        self.record(*events)
        pod = facts.get("pod")
        if isinstance(trigger, PlacementTrigger) and pod is not None:
            placement = self.state.placement(str(pod))
            if placement is not None and placement.state is S.LOADING:
                self.loading.add(str(pod))
            else:
                self.loading.discard(str(pod))
        return True


@dataclass(frozen=True, slots=True)
class _Target:
    phase: Phase
    reason: str
    message: str
    failure: PhaseTrigger = PhaseTrigger.LOADING_FAILED
    leaving: PhaseTrigger = PhaseTrigger.RETRY_DUE
    """Why a Failed adapter starts over, if it does."""


class StateCache:
    """Folded states by uid, topped up from the log; this process is the only writer while it leads."""

    def __init__(self, store: SqlEventStore) -> None:
        self.store = store
        self._states: dict[str, AdapterState] = {}

    async def load(self, uid: str) -> AdapterState:
        cached = self._states.get(uid, AdapterState())
        state = fold(await self.store.read(uid, after=cached.version), cached)
        self._states[uid] = state
        return state

    def put(self, uid: str, state: AdapterState) -> None:
        self._states[uid] = state

    def get(self, uid: str) -> AdapterState:
        return self._states.get(uid, AdapterState())

    def drop(self, uid: str) -> None:
        self._states.pop(uid, None)


class Reconciler:
    def __init__(
        self,
        *,
        kube: Kube,
        store: SqlEventStore,
        engines: EngineConnections,
        cluster: ClusterView,
        recorder: EventRecorder,
        settings: ReconcileSettings = ReconcileSettings(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.store = store
        self.engines = engines
        self.cluster = cluster
        self.recorder = recorder
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.states = StateCache(store)
        self.phases: dict[str, Phase] = {}
        """The phase of every adapter this operator has reconciled, for the phase gauge."""
        self._verified: dict[tuple[str, str], float] = {}
        """(uid, pod) -> monotonic time the engine last confirmed the adapter; empty after a restart."""

    # --- the entry point ---------------------------------------------------------------------------------

    async def reconcile(self, uid: str) -> float | None:
        """Bring one adapter closer to its spec; returns seconds until it should be looked at again."""
        started = time.perf_counter()
        adapter = self.cluster.adapter(uid)
        base = await self.states.load(uid)
        metadata = (adapter or {}).get("metadata") or {}
        namespace = str(metadata.get("namespace") or base.namespace or "")
        name = str(metadata.get("name") or base.name or "")
        step = _Pass(base, self.clock(), self.settings.backoff, namespace, name, uuid.uuid4().hex[:16])
        with log_context(adapter=f"{namespace}/{name}", uid=uid, reconcile_id=step.reconcile_id):
            requeue = await self._reconcile(uid, adapter, step)
        self._measure(uid, step, time.perf_counter() - started)
        return requeue

    async def _reconcile(self, uid: str, adapter: Raw | None, step: _Pass) -> float | None:
        if adapter is None:
            requeue = await self._orphaned(uid, step) if step.base.version and not step.base.finalized else None
            if step.state.finalized or not step.base.version:
                self.cluster.forget(uid)
        else:
            spec = parse_spec(adapter)
            fresh_spec = self._observe_spec(step, adapter, spec)
            if adapter["metadata"].get("deletionTimestamp"):
                requeue = await self._terminate(step, adapter, spec)
            elif isinstance(spec, SpecProblem):
                requeue = await self._reject(step, adapter, spec)
            elif not await self._ensure_finalizer(adapter):
                await self._finish(step, adapter, candidates=0, desired=0)
                requeue = 1.0
            else:
                requeue = await self._converge(step, adapter, spec, fresh_spec=fresh_spec)
        return requeue

    def _measure(self, uid: str, step: _Pass, seconds: float) -> None:
        if step.state.finalized:
            self.phases.pop(uid, None)
        elif step.state.phase is not None:
            self.phases[uid] = step.state.phase
        if self.metrics is None:
            return
        self.metrics.observe_reconcile(seconds)
        for payload in step.appended:
            match payload:
                case PhaseChanged() if payload.from_phase is not payload.to_phase:
                    self.metrics.phase_changed(payload.from_phase, payload.to_phase)
                case LoadSucceeded() if payload.duration_ms:
                    self.metrics.observe_load(payload.duration_ms / 1000)
                case LoadFailed() if payload.retry_at is not None:
                    self.metrics.load_retried()
                case PodSwitched():
                    self.metrics.pod_switched()
                case _:
                    pass
        self.metrics.set_phase_counts(Counter(self.phases.values()))

    # --- 1. the spec -------------------------------------------------------------------------------------

    def _observe_spec(self, step: _Pass, adapter: Mapping[str, Any], spec: AdapterSpec | SpecProblem) -> bool:
        """Record a generation not seen before; True if this pass saw it first."""
        generation = _generation(adapter)
        if step.state.version and step.state.generation == generation:
            return False
        raw_spec = adapter.get("spec") or {}
        replicas = raw_spec.get("replicas")
        step.record(
            SpecObserved(
                generation=generation,
                artifact_url=spec.artifact_url if isinstance(spec, AdapterSpec) else str(raw_spec.get("artifactURL", ""))[:2048],
                replicas=replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None,
                scheduler_name=str(raw_spec.get("schedulerName") or "default")[:253],
                pod_selector=spec.pod_selector.render() if isinstance(spec, AdapterSpec) else "",
                base_model=spec.base_model if isinstance(spec, AdapterSpec) else None,
            )
        )
        if isinstance(spec, SpecProblem):
            step.record(SpecRejected(generation=generation, field=spec.field, rule=spec.rule, message=spec.message))
        if step.state.phase is None:
            step.decide(PhaseTrigger.CREATED)
        return True

    async def _reject(self, step: _Pass, adapter: Mapping[str, Any], problem: SpecProblem) -> float | None:
        """The spec cannot be acted on: say so, naming the field; what is loaded stays until it changes."""
        await self._keep_truthful(step, adapter)
        self._walk(step, _Target(Phase.FAILED, "InvalidSpec", problem.message, PhaseTrigger.SPEC_INVALID))
        await self._finish(step, adapter, candidates=0, desired=0)
        return self._next_look(step, {}, True)

    async def _secrets(self, spec: AdapterSpec, adapter: Mapping[str, Any]) -> tuple[str | None, dict[str, str], SpecProblem | None]:
        """The engine API key and the artifact credentials, read fresh (never stored, never logged)."""
        namespace = str(adapter["metadata"]["namespace"])
        api_key: str | None = None
        credentials: dict[str, str] = {}
        if spec.api_key_secret is not None:
            ref = spec.api_key_secret
            try:
                api_key = (await self._secret_data(namespace, ref.name)).get(ref.key)
            except NotFound:
                return None, {}, SpecProblem("spec.apiKeySecretRef.name", f"Secret {namespace}/{ref.name} not found")
            if not api_key:
                return None, {}, SpecProblem("spec.apiKeySecretRef.key", f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        elif spec.has_inline_api_key:
            api_key = str(((adapter.get("spec") or {}).get("additionalConfig") or {}).get("api-key"))
        if spec.credentials_secret is not None:
            try:
                credentials = await self._secret_data(namespace, spec.credentials_secret)
            except NotFound:
                return None, {}, SpecProblem(
                    "spec.credentialsSecretRef.name", f"Secret {namespace}/{spec.credentials_secret} not found"
                )
        return api_key, credentials, None

    async def _secret_data(self, namespace: str, name: str) -> dict[str, str]:
        secret = await self.kube.get(SECRETS, namespace, name)
        data: dict[str, str] = {}
        for key, value in (secret.get("data") or {}).items():
            try:
                data[str(key)] = base64.b64decode(str(value)).decode()
            except (ValueError, UnicodeDecodeError):
                continue  # binary data is no credential we could send
        return data

    # --- 2. deletion --------------------------------------------------------------------------------------

    async def _terminate(self, step: _Pass, adapter: Mapping[str, Any], spec: AdapterSpec | SpecProblem) -> float | None:
        metadata = adapter["metadata"]
        namespace, uid = str(metadata["namespace"]), str(metadata["uid"])
        if FINALIZER not in (metadata.get("finalizers") or []):
            # Never ours to hold (or already released): the stream ends with the object.
            if step.state.version and not step.state.finalized:
                step.record(Finalized())
            await self._save(step, adapter)
            return None
        self._walk(step, _Target(Phase.TERMINATING, "Terminating", "unloading from every pod"))
        deadline = (_parse_time(metadata.get("deletionTimestamp")) or step.now) + self.settings.unload_timeout
        api_key: str | None = None
        secrets: tuple[str, ...] = ()
        if isinstance(spec, AdapterSpec):
            api_key, credentials, _ = await self._secrets(spec, adapter)
            secrets = _sensitive(api_key, credentials, adapter)
        if not await self._retire_everything(step, adapter, deadline=deadline, api_key=api_key, secrets=secrets,
                                             publish=(0, 0)):  # fmt: skip
            return 0.0
        if step.state.placements:
            await self._finish(step, adapter, candidates=0, desired=0)
            return self._next_look(step, {}, True) or 1.0
        if not step.state.finalized:
            step.record(Finalized())
        # The log says Finalized before the finalizer goes: a crash in between finds a finalized stream and
        # only has to remove the finalizer.
        if not await self._save(step, adapter):
            return 0.0
        try:
            finalizers = [f for f in metadata.get("finalizers") or [] if f != FINALIZER]
            await self.kube.patch(
                MODELADAPTERS,
                namespace,
                str(metadata["name"]),
                {"metadata": {"finalizers": finalizers, "resourceVersion": metadata.get("resourceVersion")}},
            )
        except NotFound:
            pass
        except KubeError as error:
            log.warning("could not remove the finalizer of %s/%s: %s", namespace, metadata.get("name"), error)
            return 1.0
        self._forget(uid)
        return None

    def _forget(self, uid: str) -> None:
        """An adapter is gone for good: drop what this process kept about it."""
        self.cluster.forget(uid)
        self.recorder.forget(uid)
        self.states.drop(uid)
        self.phases.pop(uid, None)
        for key in [k for k in self._verified if k[0] == uid]:
            del self._verified[key]

    async def _orphaned(self, uid: str, step: _Pass) -> float | None:
        """The object vanished without our finalizer running (it was forced off): clean up what we can."""
        state = step.state
        assert state.namespace is not None and state.name is not None
        adapter = {"metadata": {"namespace": state.namespace, "name": state.name, "uid": uid}}
        deadline = step.now + self.settings.unload_timeout
        if not await self._retire_everything(step, adapter, deadline=deadline, api_key=None, secrets=()):
            return 0.0
        if not step.state.placements:
            step.record(Finalized())
        await self._save(step, adapter)
        if step.state.finalized:
            self._forget(uid)
            return None
        return self._next_look(step, {}, True) or 1.0

    async def _retire_everything(
        self,
        step: _Pass,
        adapter: Mapping[str, Any],
        *,
        deadline: datetime,
        api_key: str | None,
        secrets: tuple[str, ...],
        publish: tuple[int, int] | None = None,
    ) -> bool:
        """Unload the adapter from every pod; False if the write-ahead append lost a race."""
        namespace = str(adapter["metadata"]["namespace"])
        pods = self._pods(namespace)
        for placement in list(step.state.placements):
            if placement.pod not in pods:
                step.decide(U.POD_GONE, pod=placement.pod, reason="pod deleted")
            elif placement.state is not S.UNLOADING:
                step.decide(U.UNLOAD, pod=placement.pod, unload_deadline=deadline)
        return await self._unload_all(step, adapter, pods, api_key=api_key, secrets=secrets, publish=publish)

    async def _ensure_finalizer(self, adapter: Mapping[str, Any]) -> bool:
        metadata = adapter["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if FINALIZER in finalizers:
            return True
        try:
            await self.kube.patch(
                MODELADAPTERS,
                str(metadata["namespace"]),
                str(metadata["name"]),
                {"metadata": {"finalizers": [*finalizers, FINALIZER], "resourceVersion": metadata.get("resourceVersion")}},
            )
        except KubeError as error:
            log.info("finalizer not added to %s/%s yet: %s", metadata["namespace"], metadata["name"], error)
            return False
        return True

    # --- 3 to 8: converging on the spec -------------------------------------------------------------------

    async def _converge(
        self, step: _Pass, adapter: Mapping[str, Any], spec: AdapterSpec, *, fresh_spec: bool
    ) -> float | None:
        metadata = adapter["metadata"]
        namespace, uid = str(metadata["namespace"]), str(metadata["uid"])
        api_key, credentials, secret_problem = await self._secrets(spec, adapter)
        if secret_problem is not None:
            await self._keep_truthful(step, adapter)
            self._walk(step, _Target(Phase.FAILED, "SecretNotFound", secret_problem.message, PhaseTrigger.SPEC_INVALID))
            await self._finish(step, adapter, candidates=0, desired=0)
            return self.settings.secret_retry.total_seconds()
        secrets = _sensitive(api_key, credentials, adapter)
        failed_for = step.state.phase_reason if step.state.phase is Phase.FAILED else None
        pods = self._pods(namespace)
        matching = {name: pod for name, pod in pods.items() if spec.pod_selector.matches(pod.labels)}
        healthy = {name: pod for name, pod in matching.items() if self._health(pod, step.now).healthy}
        schedulable = {name: pod for name, pod in healthy.items() if self._health(pod, step.now).schedulable}

        self._retire_lost_pods(step, pods, matching, healthy)
        await self._verify(step, adapter, spec, healthy, api_key)
        tried = {p.pod for p in step.state.placements}
        desired, blocked = 0, ""

        def target(service_ready: bool | None) -> _Target:
            if failed_for in ("InvalidSpec", "SecretNotFound") and fresh_spec:
                leaving = PhaseTrigger.SPEC_CHANGED
            elif any(p.pod not in tried for p in step.state.placements):
                leaving = PhaseTrigger.PODS_CHANGED
            else:
                leaving = PhaseTrigger.RETRY_DUE
            return self._target(step, adapter, service_ready=service_ready, blocked=blocked, leaving=leaving)

        # A pod that refuses the adapter for good is switched away from in the same pass, until every
        # candidate was tried: one round per pod at most.
        for round_ in range(len(schedulable) + 1):
            desired, blocked = self._schedule(step, adapter, spec, healthy, schedulable, fresh_spec=fresh_spec and round_ == 0)
            self._refresh_stale(step, spec, healthy)
            self._walk(step, target(None))
            exhausted_before = sum(1 for p in step.state.placements if p.state is S.EXHAUSTED)
            # Write ahead: the log knows which loads are about to start before the engines do, so a crash
            # in between leaves placements a restart can check and clean up, never a copy nobody knows of.
            if step.loading:
                if not await self._save(step, adapter):
                    return 0.0
                # The loads may take up to the engine timeout (or never return, if the process dies): what the
                # log now says about the instances (a lost pod is none) goes out before they start.
                await self._publish(step, adapter, pods, candidates=len(healthy), desired=desired)
            await self._load_all(step, adapter, spec, healthy, api_key, credentials, secrets)
            untried = set(schedulable) - {p.pod for p in step.state.placements}
            if sum(1 for p in step.state.placements if p.state is S.EXHAUSTED) == exhausted_before or not untried:
                break
        if not await self._unload_all(step, adapter, pods, api_key=api_key, secrets=secrets,
                                      publish=(len(healthy), desired)):  # fmt: skip
            return 0.0
        self._walk(step, target(None))
        service_ready = await self._bind_service(step, adapter, pods)
        self._walk(step, target(service_ready))
        if not await self._finish(step, adapter, candidates=len(healthy), desired=desired):
            return 0.0
        self.cluster.record_placements(uid, namespace, step.state)
        return self._next_look(step, matching, service_ready)

    async def _publish(
        self, step: _Pass, adapter: Mapping[str, Any], pods: Mapping[str, ObservedPod], *, candidates: int, desired: int
    ) -> None:
        """In the middle of a pass, before engine calls that may take up to the engine timeout (or never return,
        if the process dies), if the instances changed: the status, Service and EndpointSlice as the log has them
        now (the retry annotations wait for the end of the pass)."""
        shown = step.status if step.status is not None else adapter.get("status") or {}
        if list(step.state.instances) == list(shown.get("instances") or []):
            return
        if step.state.endpoints is not None:
            listed = {pods[name].ip for name in step.state.instances if name in pods and pods[name].ip}
            if listed != set(step.state.endpoints):
                await self._bind_service(step, adapter, pods)
        await self._project(step, adapter, candidates=candidates, desired=desired, annotations=False)

    async def _keep_truthful(self, step: _Pass, adapter: Mapping[str, Any]) -> None:
        """On a failure path too, pods that are gone or unhealthy leave the instances and the EndpointSlice."""
        pods = self._pods(str(adapter["metadata"]["namespace"]))
        for placement in list(step.state.placements):
            pod = pods.get(placement.pod)
            if pod is None:
                step.decide(U.POD_GONE, pod=placement.pod, reason="pod deleted")
            elif placement.active and not self._health(pod, step.now).healthy:
                step.decide(U.POD_LOST, pod=placement.pod, reason=self._health(pod, step.now).reason)
        if step.state.endpoints is not None:
            await self._bind_service(step, adapter, pods)

    def _retire_lost_pods(
        self,
        step: _Pass,
        pods: Mapping[str, ObservedPod],
        matching: Mapping[str, ObservedPod],
        healthy: Mapping[str, ObservedPod],
    ) -> None:
        """Gone pods retire the placement; unhealthy ones lose it at once; unselected ones are unloaded."""
        uid = step.state.stream_id or ""
        for placement in list(step.state.placements):
            pod = pods.get(placement.pod)
            if pod is None:
                step.decide(U.POD_GONE, pod=placement.pod, reason="pod deleted")
                self._verified.pop((uid, placement.pod), None)
            elif placement.pod not in matching:
                if placement.state is not S.UNLOADING:
                    self._unload(step, placement.pod)
            elif placement.pod not in healthy and placement.active:
                step.decide(U.POD_LOST, pod=placement.pod, reason=self._health(pod, step.now).reason)

    def _unload(self, step: _Pass, pod: str) -> None:
        step.decide(U.UNLOAD, pod=pod, unload_deadline=step.now + self.settings.unload_timeout)

    async def _verify(
        self, step: _Pass, adapter: Mapping[str, Any], spec: AdapterSpec, healthy: Mapping[str, ObservedPod], api_key: str | None
    ) -> None:
        """Ask the engines whether the adapter is still there, for placements not checked recently, and
        settle loads a restart interrupted (the engine knows whether they landed)."""
        uid = str(adapter["metadata"]["uid"])
        due = time.monotonic() - self.settings.verify_interval.total_seconds()
        checking = [
            placement
            for placement in step.state.placements
            if placement.pod in healthy
            and (
                placement.state is S.LOADING
                or (placement.state is S.LOADED and self._verified.get((uid, placement.pod), float("-inf")) < due)
            )
        ]
        if not checking:
            return

        async def check(placement: Placement) -> Verification | EngineError:
            try:
                client = self._client(adapter, healthy[placement.pod], api_key)
                return await client.verify(spec.lora_name, placement.artifact_url or spec.artifact_url)
            except EngineError as error:
                return error

        results = await asyncio.gather(*(check(p) for p in checking))
        step.tick(self.clock())
        for placement, result in zip(checking, results, strict=True):
            if result is Verification.LOADED:
                self._verified[(uid, placement.pod)] = time.monotonic()
                if placement.state is S.LOADING:
                    step.decide(U.LOAD_SUCCEEDED, pod=placement.pod, duration_ms=0.0)
            elif placement.state is S.LOADING:
                step.decide(U.LOAD_FAILED, pod=placement.pod, error="the operator restarted during the load", retriable=True)
            elif result is Verification.OTHER_PATH:
                step.decide(U.ADAPTER_MISSING, pod=placement.pod, reason="the engine serves another artifact under this name")
            elif isinstance(result, EngineError):
                step.decide(U.ADAPTER_MISSING, pod=placement.pod, reason=f"engine unreachable: {result}")
            else:
                step.decide(U.ADAPTER_MISSING, pod=placement.pod, reason="not listed by the engine's /v1/models (evicted, or the engine restarted)")

    def _schedule(
        self,
        step: _Pass,
        adapter: Mapping[str, Any],
        spec: AdapterSpec,
        healthy: Mapping[str, ObservedPod],
        schedulable: Mapping[str, ObservedPod],
        *,
        fresh_spec: bool,
    ) -> tuple[int, str]:
        """Retry what is due, repair lost placements, place missing replicas, trim surplus ones.

        Synchronous on purpose: between reading the pods' load and recording the new placements in the shared
        index no other reconcile can run, so concurrent adapters cannot overfill a pod with a capacity.
        Returns the desired replica count and, when nothing could be placed, why (`Reason: message`).
        """
        metadata = adapter["metadata"]
        namespace, uid = str(metadata["namespace"]), str(metadata["uid"])
        now = step.now

        def has_room(pod: str) -> bool:
            capacity = healthy[pod].view.capacity if pod in healthy else None
            return capacity is None or self.cluster.load_of(namespace, pod, excluding=uid) < capacity

        for placement in list(step.state.placements):
            due = placement.next_retry_at is not None and placement.next_retry_at <= now
            if placement.state is S.BACKOFF and due and placement.pod in healthy:
                step.decide(U.RETRY_DUE, pod=placement.pod, artifact_url=spec.artifact_url)
        holding = {p.pod for p in step.state.placements if p.pod in healthy and (p.active or p.state is S.LOST)}
        desired = spec.replicas if spec.replicas is not None else len(set(schedulable) | holding)

        def missing() -> int:
            return desired - sum(1 for p in step.state.placements if p.active)

        # Repair first: a healthy pod that lost the adapter (eviction, engine restart) gets it back.
        for placement in list(step.state.placements):
            if placement.state is S.LOST and placement.pod in healthy and missing() > 0 and has_room(placement.pod):
                step.decide(U.RELOAD, pod=placement.pod, artifact_url=spec.artifact_url)
        # Exhausted pods get fresh attempts once they rested, or at once for a new spec (it may be the fix);
        # pods no longer needed are let go.
        for placement in list(step.state.placements):
            rested = placement.next_retry_at is not None and placement.next_retry_at <= now
            if placement.state is S.EXHAUSTED and (rested or fresh_spec):
                if missing() > 0 and placement.pod in schedulable and has_room(placement.pod):
                    step.decide(U.RECONSIDER, pod=placement.pod)
                elif rested:
                    self._unload(step, placement.pod)
        blocked = ""
        if missing() > 0:
            taken = {p.pod for p in step.state.placements if p.state is not S.LOST}
            pool = [
                Candidate(pod=name, adapters=self.cluster.load_of(namespace, name, excluding=uid), capacity=pod.view.capacity)
                for name, pod in schedulable.items()
                if name not in taken
            ]
            choice = choose_pods(spec.scheduler, pool, adapter=spec.lora_name, count=missing(), seed=uuid.uuid4().hex)
            displaced = [p for p in step.state.placements if p.state in (S.EXHAUSTED, S.LOST) and p.pod not in choice.pods]
            for pod in choice.pods:
                old = displaced.pop(0) if displaced else None
                reason = _switch_reason(old) if old is not None else f"{spec.scheduler.value}: {self.cluster.load_of(namespace, pod, excluding=uid)} adapters on the pod"
                step.decide(U.ASSIGN, pod=pod, policy=spec.scheduler.value, replaces=old.pod if old else None, reason=reason)
            if not any(p.active for p in step.state.placements):
                blocked = self._why_unplaced(namespace, spec, healthy, schedulable, choice.full)
        elif missing() < 0:
            # Fewer replicas wanted: let go of the placements that serve least, newest first.
            order = {S.ASSIGNED: 0, S.BACKOFF: 1, S.LOADING: 2, S.LOADED: 3}
            surplus = sorted((p for p in step.state.placements if p.active), key=lambda p: (order[p.state], -p.since.timestamp()))
            for placement in surplus[: -missing()]:
                self._unload(step, placement.pod)
        if desired == 0 and not any(p.active for p in step.state.placements):
            # `replicas` omitted and no pod schedulable yet: say why, as for a replica that cannot be placed.
            blocked = self._why_unplaced(namespace, spec, healthy, schedulable, ())
        # A lost placement on a pod that is back but no longer needed gives the adapter back to the engine.
        for placement in list(step.state.placements):
            if placement.state is S.LOST and placement.pod in healthy:
                self._unload(step, placement.pod)
        self.cluster.record_placements(uid, namespace, step.state)
        return desired, blocked

    def _why_unplaced(
        self,
        namespace: str,
        spec: AdapterSpec,
        healthy: Mapping[str, ObservedPod],
        schedulable: Mapping[str, ObservedPod],
        full: tuple[str, ...],
    ) -> str:
        if full:
            return f"InsufficientCapacity: every candidate pod is full ({' '.join(full)})"
        if healthy and len(schedulable) < len(healthy):
            window = self.settings.stability_window.total_seconds()
            return f"WaitingForStablePods: matching pods have been Ready for less than {window:g}s"
        return f"NoCandidatePods: no healthy pod in namespace {namespace} matches {spec.pod_selector.render()}"

    def _refresh_stale(self, step: _Pass, spec: AdapterSpec, healthy: Mapping[str, ObservedPod]) -> None:
        """Start the loads that placing decided, and reload pods that hold an older artifact."""
        for placement in list(step.state.placements):
            if placement.pod not in healthy:
                continue
            if placement.state is S.ASSIGNED:
                step.decide(U.START_LOAD, pod=placement.pod, artifact_url=spec.artifact_url)
            elif placement.state is S.LOADED and placement.artifact_url != spec.artifact_url:
                step.decide(U.RELOAD, pod=placement.pod, artifact_url=spec.artifact_url)

    async def _load_all(
        self,
        step: _Pass,
        adapter: Mapping[str, Any],
        spec: AdapterSpec,
        healthy: Mapping[str, ObservedPod],
        api_key: str | None,
        credentials: Mapping[str, str],
        secrets: tuple[str, ...],
    ) -> None:
        """Make the load calls this pass decided, concurrently; a load counts only once `/v1/models` lists it."""
        uid = str(adapter["metadata"]["uid"])
        names = sorted(pod for pod in step.loading if pod in healthy)
        if not names:
            return
        request = LoadRequest(
            name=spec.lora_name,
            artifact_url=spec.artifact_url,
            credentials=dict(credentials),
            additional_config={str(k): str(v) for k, v in ((adapter.get("spec") or {}).get("additionalConfig") or {}).items()},
        )

        async def load(pod: ObservedPod) -> tuple[float, EngineError | None]:
            began = time.perf_counter()
            try:
                client = self._client(adapter, pod, api_key)
                try:
                    await client.load(request)
                except outcomes.AlreadyLoadedWithOtherPath:
                    # Ours from an earlier artifact (a spec change, or a restart in between): swap it in place.
                    await client.load(request, replace=True)
            except EngineError as error:
                return (time.perf_counter() - began) * 1000, error
            try:
                verified = await client.verify(spec.lora_name, spec.artifact_url)
            except EngineError as error:
                # The engine accepted the load; only the check failed, which says nothing against the adapter
                # (and the engine may hold it now): another attempt, like an engine that is not ready.
                return (time.perf_counter() - began) * 1000, outcomes.EngineUnavailable(
                    f"load: the engine accepted the load but could not list its adapters: {error}",
                    status=error.status,
                )
            if verified is not Verification.LOADED:
                # Not serving it (yet): worth another attempt, like an engine that is not ready.
                return (time.perf_counter() - began) * 1000, outcomes.EngineUnavailable(
                    f"load: the engine accepted the load but its /v1/models says {verified.value}"
                )
            return (time.perf_counter() - began) * 1000, None

        results = await asyncio.gather(*(load(healthy[name]) for name in names))
        step.tick(self.clock())
        for name, (elapsed_ms, error) in zip(names, results, strict=True):
            if error is not None:
                step.decide(U.LOAD_FAILED, pod=name, error=_scrub(str(error), secrets), retriable=error.retriable)
            else:
                step.decide(U.LOAD_SUCCEEDED, pod=name, duration_ms=round(elapsed_ms, 3))
                self._verified[(uid, name)] = time.monotonic()
        step.loading.clear()

    async def _unload_all(
        self,
        step: _Pass,
        adapter: Mapping[str, Any],
        pods: Mapping[str, ObservedPod],
        *,
        api_key: str | None,
        secrets: tuple[str, ...],
        publish: tuple[int, int] | None = None,
    ) -> bool:
        """Make the unload calls that are due (a 404 counts as unloaded); False if the write-ahead lost a race.

        `publish` (candidates, desired): first write the status and endpoints if the instances changed (see
        `_publish`); None where there is no object to write to."""
        metadata = adapter["metadata"]
        name, uid = str(metadata["name"]), str(metadata["uid"])
        unloading = [
            p.pod
            for p in step.state.placements
            if p.state is S.UNLOADING and (p.next_retry_at is None or p.next_retry_at <= step.now)
        ]
        if not unloading:
            return True
        if step.payloads and not await self._save(step, adapter):
            return False
        if publish is not None:
            await self._publish(step, adapter, pods, candidates=publish[0], desired=publish[1])

        async def unload(pod: ObservedPod) -> EngineError | None:
            try:
                await self._client(adapter, pod, api_key).unload(name)
            except EngineError as error:
                return error
            return None

        reachable = [p for p in unloading if p in pods and pods[p].ip]
        results = dict(zip(reachable, await asyncio.gather(*(unload(pods[p]) for p in reachable)), strict=True))
        step.tick(self.clock())
        for pod_name in unloading:
            self._verified.pop((uid, pod_name), None)
            if pod_name not in pods:
                step.decide(U.POD_GONE, pod=pod_name, reason="pod deleted")
            elif pod_name not in results:
                step.decide(U.UNLOAD_FAILED, pod=pod_name, error="the pod has no IP address")
            elif (error := results[pod_name]) is None:
                step.decide(U.UNLOAD_SUCCEEDED, pod=pod_name)
            else:
                step.decide(U.UNLOAD_FAILED, pod=pod_name, error=_scrub(str(error), secrets))
        return True

    async def _bind_service(self, step: _Pass, adapter: Mapping[str, Any], pods: Mapping[str, ObservedPod]) -> bool:
        """The Service and EndpointSlice list exactly the instances; True when they do and there are some."""
        endpoints = [
            Endpoint(pod=name, ip=pods[name].ip or "", uid=pods[name].uid)
            for name in step.state.instances
            if name in pods and pods[name].ip
        ]
        if not endpoints and step.state.endpoints is None:
            return False
        try:
            await ensure_service(self.kube, adapter, endpoints, port=_engine_port(adapter))
        except KubeError as error:
            log.warning("service for %s/%s not in place: %s", adapter["metadata"]["namespace"], adapter["metadata"]["name"], error)
            if isinstance(error, NotOurs) and adapter["metadata"].get("resourceVersion"):
                # Only a person can settle this: say it where they look (`kubectl describe`), not only in our log.
                notice = Notice("Warning", "ServiceConflict", f"{error.message}; the adapter stays Bound until it is renamed or removed")
                await self.recorder.record(adapter, [notice])
            return False
        ips = tuple(sorted(e.ip for e in endpoints))
        if step.state.endpoints != ips:
            step.record(ServiceBound(service=str(adapter["metadata"]["name"]), endpoints=ips))
        return bool(endpoints) and len(endpoints) == len(step.state.instances)

    # --- the phase ---------------------------------------------------------------------------------------

    def _target(
        self, step: _Pass, adapter: Mapping[str, Any], *, service_ready: bool | None, blocked: str, leaving: PhaseTrigger
    ) -> _Target:
        """Where the placements say the adapter stands now (`service_ready` None: not checked yet this pass)."""
        namespace, name = str(adapter["metadata"]["namespace"]), str(adapter["metadata"]["name"])
        state = step.state
        if state.instances:
            if service_ready is None and state.phase is Phase.RUNNING:
                service_ready = True  # decided after the Service is checked, at the end of the pass
            if service_ready:
                return _Target(Phase.RUNNING, "ModelAdapterAvailable", ready_message(namespace, name), leaving=leaving)
            return _Target(Phase.BOUND, "Loaded", _loaded_message(state), leaving=leaving)
        in_flight = [p for p in state.placements if p.state in (S.LOADING, S.BACKOFF)]
        if in_flight:
            return _Target(Phase.LOADING, "Loading", _loading_message(in_flight), leaving=leaving)
        assigned = tuple(p.pod for p in state.placements if p.state is S.ASSIGNED)
        if assigned:
            return _Target(Phase.SCHEDULED, "Scheduled", scheduled_message(namespace, name, assigned), leaving=leaving)
        exhausted = [p for p in state.placements if p.state is S.EXHAUSTED]
        if exhausted and not blocked.startswith(("WaitingForStablePods", "InsufficientCapacity")):
            errors = "; ".join(f"pod {p.pod}: {p.last_error or 'unknown error'}" for p in exhausted)
            return _Target(Phase.FAILED, "ModelAdapterLoadingError", f"Loading failed on all pods: {errors}", leaving=leaving)
        reason, _, message = (blocked or "NoCandidatePods: no healthy pod matches the selector").partition(": ")
        return _Target(Phase.PENDING, reason, message, leaving=leaving)

    def _walk(self, step: _Pass, target: _Target) -> None:
        """Follow the phase table to `target`, one edge at a time, each with its own reason and message."""
        for _ in range(8):
            current = step.state.phase
            trigger = next_trigger(current, target.phase, failure=target.failure, leaving_failed=target.leaving)
            if trigger is None:
                self._restate(step, target)
                return
            lands = _destination(current, trigger) is target.phase
            reason, message = (target.reason, target.message) if lands else _words(step, trigger)
            if not step.decide(trigger, reason=reason, message=message):
                log.warning("phase walk stuck at %s towards %s (%s)", current, target.phase, trigger.value)
                return

    def _restate(self, step: _Pass, target: _Target) -> None:
        """Already in the phase, for a new reason: record it where the table has a reflexive edge."""
        state = step.state
        if (state.phase_reason, state.phase_message) == (target.reason, target.message):
            return
        if target.phase is Phase.PENDING:
            step.decide(PhaseTrigger.PODS_UNAVAILABLE, reason=target.reason, message=target.message)
        elif target.phase is Phase.FAILED and target.failure is PhaseTrigger.SPEC_INVALID:
            step.decide(PhaseTrigger.SPEC_INVALID, reason=target.reason, message=target.message)

    # --- 8. append, status, events -----------------------------------------------------------------------

    async def _finish(self, step: _Pass, adapter: Mapping[str, Any], *, candidates: int, desired: int) -> bool:
        if not await self._save(step, adapter):
            return False
        await self._project(step, adapter, candidates=candidates, desired=desired)
        return True

    async def _save(self, step: _Pass, adapter: Mapping[str, Any]) -> bool:
        """One append of everything this pass decided; False if another writer moved first."""
        if not step.payloads:
            return True
        metadata = adapter["metadata"]
        uid = str(metadata["uid"])
        payloads = list(step.payloads)
        began = time.perf_counter()
        try:
            recorded = await self.store.append(
                uid,
                stamp(payloads, at=step.now, reconcile_id=step.reconcile_id, observed_generation=_generation(adapter)),
                expected_version=step.base.version,
                namespace=str(metadata["namespace"]),
                name=str(metadata["name"]),
            )
        except ConcurrencyConflict as conflict:
            log.warning("%s; the next reconcile reads the log again", conflict)
            self.states.drop(uid)
            return False
        if self.metrics is not None:
            self.metrics.observe_event_append(time.perf_counter() - began)
        step.base = step.state = fold(recorded, step.base)
        self.states.put(uid, step.base)
        step.payloads.clear()
        step.appended.extend(payloads)
        notices = events_for(payloads, step.state, namespace=str(metadata["namespace"]), name=str(metadata["name"]))
        if notices and metadata.get("resourceVersion"):
            await self.recorder.record(adapter, notices)
        return True

    async def _project(
        self, step: _Pass, adapter: Mapping[str, Any], *, candidates: int, desired: int, annotations: bool = True
    ) -> None:
        """Patch `/status` and the retry annotations, only where the projection differs from the object."""
        metadata = adapter["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        current = step.status if step.status is not None else adapter.get("status") or {}
        status = project_status(
            step.state,
            namespace=namespace,
            name=name,
            generation=_generation(adapter),
            candidates=candidates,
            desired=desired,
            current=current,
            now=step.now,
        )
        try:
            if any(current.get(key) != value for key, value in status.items()):
                # Remembered before the patch: its echo may come back through the watch before the call returns.
                self.cluster.wrote_status(str(metadata["uid"]), status)
                await self.kube.patch(MODELADAPTERS, namespace, name, {"status": status}, subresource="status")
                step.status = {**current, **status}
            if not annotations:
                return
            retries = retry_annotations(step.state, dict(metadata.get("annotations") or {}))
            if retries and not metadata.get("deletionTimestamp"):
                await self.kube.patch(MODELADAPTERS, namespace, name, {"metadata": {"annotations": retries}})
        except NotFound:
            pass  # deleted meanwhile; the watch brings the news
        except KubeError as error:
            log.warning("could not write the status of %s/%s: %s", namespace, name, error)

    # --- helpers -----------------------------------------------------------------------------------------

    def _pods(self, namespace: str) -> dict[str, ObservedPod]:
        return {pod.name: pod for pod in (observe_pod(raw) for raw in self.cluster.pods_in(namespace))}

    def _health(self, pod: ObservedPod, now: datetime) -> PodHealth:
        return assess_pod(pod.view, now=now, stability=self.settings.stability_window)

    def _client(self, adapter: Mapping[str, Any], pod: ObservedPod, api_key: str | None) -> EngineClient:
        target = select_engine(
            pod_ip=pod.ip,
            pod_labels=pod.labels,
            container_names=pod.containers,
            adapter_labels=(adapter.get("metadata") or {}).get("labels") or {},
            runtime_sidecar_enabled=self.settings.runtime_sidecar,
        )
        return self.engines.client(target, api_key=api_key or None)

    def _next_look(self, step: _Pass, matching: Mapping[str, ObservedPod], service_ready: bool) -> float | None:
        now = step.now
        times: list[datetime] = []
        for placement in step.state.placements:
            if placement.next_retry_at is not None:
                times.append(placement.next_retry_at)
            if placement.state is S.UNLOADING and placement.next_retry_at is None:
                times.append(now + timedelta(seconds=1))
            if placement.state is S.LOADED:
                times.append(now + self.settings.verify_interval)
        for pod in matching.values():
            ready_at = stable_since(pod.view, stability=self.settings.stability_window)
            if ready_at is not None and ready_at > now:
                times.append(ready_at)
        if step.state.instances and not service_ready:
            times.append(now + timedelta(seconds=2))
        if not times:
            return None
        return max((min(times) - now).total_seconds(), 0.0)


def _sensitive(api_key: str | None, credentials: Mapping[str, str], adapter: Mapping[str, Any]) -> tuple[str, ...]:
    """Every secret value this pass may send to an engine, to be scrubbed from what it records.

    Values from Secrets are masked from 4 characters on; `additionalConfig` values (mostly options such as
    `true` or `16`, now and then a token) from 6, so that masking them does not garble every message."""
    config = ((adapter.get("spec") or {}).get("additionalConfig") or {}).values()
    from_secrets = {v for v in (api_key or "", *credentials.values()) if len(v) >= 4}
    values = from_secrets | {text for text in (str(v) for v in config) if len(text) >= 6}
    return tuple(sorted(values, key=len, reverse=True))


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret value masked: an engine may echo what it was sent in its error."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _generation(adapter: Mapping[str, Any]) -> int:
    return int((adapter.get("metadata") or {}).get("generation") or 1)


def _engine_port(adapter: Mapping[str, Any]) -> int:
    raw = str(((adapter.get("metadata") or {}).get("labels") or {}).get(PORT_LABEL, "8000"))
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else 8000


def _destination(current: Phase | None, trigger: PhaseTrigger) -> Phase | None:
    source = "New" if current is None else current.value
    for edge in PHASE_TABLE:
        if edge.trigger is trigger and edge.source == source:
            return Phase(edge.dest)
    return None


def _words(step: _Pass, trigger: PhaseTrigger) -> tuple[str, str]:
    """The reason and message of an edge the walk passes through on the way to its target."""
    state, namespace, name = step.state, step.namespace, step.name
    if trigger is PhaseTrigger.PODS_SELECTED:
        selected = tuple(p.pod for p in state.placements if p.active)
        return "Scheduled", scheduled_message(namespace, name, selected)
    if trigger is PhaseTrigger.LOAD_STARTED:
        return "Loading", _loading_message([p for p in state.placements if p.state in (S.LOADING, S.BACKOFF)])
    if trigger is PhaseTrigger.LOAD_VERIFIED:
        return "Loaded", _loaded_message(state)
    return "", ""  # the table's defaults


def _loaded_message(state: AdapterState) -> str:
    return f"verified loaded on {len(state.instances)} pods: [{' '.join(state.instances)}]"


def _loading_message(placements: list[Placement]) -> str:
    return f"loading on {len(placements)} pods: " + "; ".join(_describe(p) for p in placements)


def _switch_reason(placement: Placement) -> str:
    if placement.state is S.EXHAUSTED:
        return f"MaxRetriesExceeded: {placement.last_error or 'no attempts left'}"
    return f"PodLost: {placement.last_error or 'the pod was lost'}"


def _describe(placement: Placement) -> str:
    if placement.state is S.BACKOFF and placement.next_retry_at is not None:
        return f"{placement.pod} (attempt {placement.attempts} failed: {placement.last_error}; retry at {placement.next_retry_at:%H:%M:%S})"
    return f"{placement.pod} (attempt {placement.attempts})"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
