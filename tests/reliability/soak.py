"""The chaos soak: a seeded, bounded run of the real operator through every fault we can inject at once.

    report = await Soak(SoakConfig(seed=7, chaos_seconds=70, backend="sqlite"), workdir).run()
    assert report.violations == []

What runs, all on loopback: the Kubernetes API emulator, 12 pods with a simulated vLLM each (8 matching pods in
namespace `default`, in two pools, 2 pods of another model there that no adapter selects, and 2 matching pods
in namespace `team-b`), the operator as a real `modeladapter run` process (so SIGKILL is real), and the event log
on SQLite or on a fresh PostgreSQL database. About 54 adapters (`replicas` omitted, 1 and 2; selectors on every
matching pod or on one pool; 3 with an artifact no engine can find) are created at once.

For `chaos_seconds` (70 in CI, `MODELADAPTER_SOAK_SECONDS` for a longer run), every fault below runs at the
same time. The timed faults each have their own `random.Random(f"{seed}:{name}")`, so that a seed replays their
plan (what is injected, where and when); refusal windows and per-request faults are keyed by the pods' IPs,
which change from run to run, and drawn in request order, and the operator's timing, and so the interleaving,
is not replayable:

* engine requests (load, unload, `/v1/models`): 10 % time out and 5 % answer HTTP 500 (vLLM's generic
  InternalServerError, which the operator's documented classification does not retry on that pod). Of the
  timeouts, 3 % hang past the operator's own engine timeout (`adapters.connections.TOTAL_TIMEOUT`, 30 s; no
  flag sets it) and 7 % are cut by the server side after 1-3 s (the connection closes unanswered, as when a
  proxy's or the server's request timeout fires). None of them is acted on by the engine, so no load lands
  late. Why not 10 % of 30 s hangs: each one holds an operator worker (8) and one of its pod's 4 connection
  slots for 30 s, so the operator then spends most of the run waiting (measured: ~3x fewer engine calls;
  `MODELADAPTER_SOAK_P_TIMEOUT=0.10 MODELADAPTER_SOAK_P_PROXY_TIMEOUT=0` runs that mix);
* connection refused: each engine closes its listening socket in windows (exponential gaps of mean 3.5 s,
  windows of 0.5-2.5 s: about 30 % of the time); a request that still arrives on a kept-alive connection
  meanwhile is dropped unanswered, like a reset;
* adapters lost by an engine: unloaded by another client (about one a second, a random adapter from a random
  engine) and engine restarts (every 4-8 s; the engine forgets every adapter and refuses connections for
  0.2-1.5 s). Engines also LRU-evict a random adapter from their caches about once a second, which, as in
  vLLM, keeps it listed: nothing for the operator to notice or repair, and the checks below must agree;
* pod deletions and re-creations (every 2-5 s, at most 2 pods out at once): graceful deletion (a
  deletionTimestamp for 0.3-1.5 s), then the container stops (the engine forgets everything), the pod object
  goes, and 0.5-2.5 s later a pod of the same name, labels and IP comes back, Ready, with an empty engine;
* the operator SIGKILLed every 15-25 s and a new process (a new identity) started 0-1 s later; leader
  election is on, so the new process waits for the dead leader's 3 s Lease to expire;
* watch streams cut by the emulator every 2-5 s (cleanly or by dropping the connection), and every fourth
  time the history compacted first, so that resuming answers 410 Expired and the informers list again;
* the database: PostgreSQL: `pg_terminate_backend` on every connection to the soak's database (the
  operator's) every 6-12 s; SQLite (which has no connection to drop): another process holds `BEGIN
  EXCLUSIVE` on the file for 0.5-3 s every 6-12 s, so every append waits on the busy timeout meanwhile;
* adapters created, edited (replicas, pool selector, artifact, scheduler, fixing a broken artifact) and
  deleted (some names re-created later) every 0.5-1.5 s, keeping 50 to 62 of them.

The operator runs as the e2e tests run it (stability window 0, a 3 s Lease), with a drain of 0.5 s before
unloads, a verify interval of 1 s and a backoff base of 0.5 s: its 5 attempts on a pod then span 7.5 s, longer
than any one refusal window or engine restart here, as the documented 5 s base spans real outages. (With 0.05 s, every refusal window of more than
0.75 s would exhaust the pod.)

Then the faults stop (hung requests are released, every engine listens, every pod is back, an operator is
running) and every valid adapter must be Running with its desired replicas within 60 s: `replicas` pods, or
every matching pod when it is omitted (all pods are healthy then), each listing it from the right artifact;
a broken adapter is not Running; no engine holds a copy that is not an instance. One documented rule is
honoured: a pod on which the adapter's placement was exhausted (5 failed attempts, or one failure that is not
retried, such as a generic HTTP 500) rests for the cool-down, 300 s whatever `--backoff-base` is
(docs/user-guide.md), before it is tried again. The log says which placements rest and until when; those pods
are left out of the desired replicas (an adapter whose every matching pod rests must be Failed), a copy on
one is accounted for, and the figures report how many there were. A second documented rule follows from it:
an artifact update that failed on such a pod halts the rollout there until that pod loads it, so while the log
shows the rollout halted on a resting pod, the other instances may still serve the older artifact. `MODELADAPTER_SOAK_AWAIT_COOLDOWNS=1` then
also waits for every cool-down to end and for the strict end state. Then `modeladapter verify -A` (the
console script) must exit 0, and the log must pass the SQL checks below.

Invariants, checked while the faults run (not only at the end); each violation is recorded with its time (a
checker that raises is recorded as a violation too: an invariant that could not be checked must not pass):

1. **Never Running without a verified instance.** Every 0.5 s, for every ModelAdapter whose `status.phase` is
   Running: `instances` is not empty and `readyReplicas == len(instances)`, and some prefix of the adapter's
   stream in the log folds to phase Running with exactly these instances (placements in `Loaded`, which only
   a load verified against `/v1/models`, or a verification, produces). No grace: the operator appends before it
   writes the status, so the prefix is always there when the status is.
2. **Instances only name pods whose engine lists the adapter, within a bounded staleness.** Every 0.5 s, for
   every pod named in a ModelAdapter's `status.instances`: the pod exists, is not terminating and its engine
   lists the adapter (by name). This cannot hold at every instant: an unload by another client, an engine
   restart or a pod deletion makes it false until the operator's next verification (`--verify-interval`, 1 s
   here) and the status write after it, and that write waits for the rest of the reconcile, whose engine calls
   may each take the 30 s engine timeout; and while no operator runs, nobody can correct a status. So a
   mismatch is a violation only when the same (adapter, pod) mismatch persists for more than
   `STALENESS_BUDGET` = engine timeout + verify interval + 8 s of *operator-available time*: time during which
   an operator process has been alive for at least `STARTUP` (10 s: the Lease's 3 s, start-up, cache sync).
   The longest mismatch seen is reported. At the end (no faults) the check is exact.
3. **The log is well formed.** Every 3 s, by SQL: each stream's versions are exactly 1..n and
   `adapter_streams.version` is n; positions are exactly 1..N over all events; no event id appears twice.
4. **`modeladapter verify` reports no persisting drift.** Every 12 s the console script runs
   (`verify -A -o json`). A drift on an adapter whose log moved on during the check is the documented race and
   is ignored; any other drift of (adapter, field) is a violation once it has been reported by every verify for
   more than `STALENESS_BUDGET` of operator-available time (a status is corrected by the adapter's next
   reconcile, which the reasons in 2 can delay). At the end: exit status 0, no drift at all.
5. **A deleted adapter is unloaded from every live pod.** Every 0.5 s, for every name that has been deleted
   and has no ModelAdapter object now (its finalizer was removed): no engine of an existing pod lists it. No
   grace: the finalizer goes only after every placement is unloaded (an engine that lost its pod forgets
   everything here, as a stopped container does).
6. **No engine call goes to a pod the adapter did not select.** Checked on every load and unload request as
   the engine receives it: the pod at that IP is in the adapter's namespace and its labels match a selector the
   adapter (any incarnation of the name) has had. Unloads from a pod after a selector change are fine (the
   old selector matched); loads onto the pods of another model, of another namespace, or of the wrong pool
   are violations.

Security: every engine wants a Bearer API key, and every adapter names the Secret that holds it
(`apiKeySecretRef`, in its own namespace), so the key is sent on every engine call of the run. At the end the
whole output of the run is searched for it (the operators' logs, /metrics, Events, the adapters' status and
annotations, Services, EndpointSlices, Leases, every verify output, the event log): any hit is a violation.

Figures (printed, and written as JSON): faults injected by kind, operator kills and restarts, adapters
created/edited/deleted, engine calls, the longest instance mismatch, time to converge after the last fault,
and every violation (there must be none).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
from aiohttp import web
from kubernetes_asyncio import client, config
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from modeladapter import migrations
from modeladapter.adapters.connections import TOTAL_TIMEOUT
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.state import AdapterState, fold
from modeladapter.operator.kube.client import MODELADAPTERS, Kube, KubeError, Raw
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.sandbox.engine.server import Reply, SimulatedEngine
from modeladapter.sandbox.pods import SimulatedKubelet
from modeladapter.store import SqlEventStore, create_engine
from modeladapter.store.schema import events, streams
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import OperatorProcess, free_port

BASE_MODEL: Final = "qwen-coder-1-5b-instruct"
BASE_LABELS: Final = {"model.aibrix.ai/name": BASE_MODEL, "adapter.model.aibrix.ai/enabled": "true"}
OTHER_LABELS: Final = {"model.aibrix.ai/name": "llama-3-8b-instruct", "adapter.model.aibrix.ai/enabled": "true"}
ARTIFACTS: Final = ("huggingface://soak/lora-a", "huggingface://soak/lora-b")
BROKEN_ARTIFACT: Final = "huggingface://soak/no-such-lora"
SCHEDULERS: Final = ("default", "least-adapters", "bin-pack", "random")
ADAPTERS_GROUP: Final = "model.aibrix.ai/v1alpha1"

VERIFY_INTERVAL: Final = 1.0
LEASE_DURATION: Final = 3.0
STARTUP: Final = 10.0
STALENESS_BUDGET: Final = TOTAL_TIMEOUT + VERIFY_INTERVAL + 8.0
CONVERGE_BUDGET: Final = 60.0
CHECKER_APP: Final = "modeladapter-soak-checker"
KEY_SECRET: Final = "engine-key"
"""Every engine wants a Bearer key; every adapter names this Secret (in its own namespace) as apiKeySecretRef."""
LOAD_PATH, UNLOAD_PATH, MODELS_PATH = "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/v1/models"


@dataclass(frozen=True, slots=True)
class SoakConfig:
    seed: int
    chaos_seconds: float
    backend: str
    """`sqlite` or `postgres`."""
    adapters: int = 54
    min_adapters: int = 50
    max_adapters: int = 62
    p_timeout: float = 0.03
    """Requests that hang past the operator's own engine timeout (30 s), then are dropped unanswered."""
    p_proxy_timeout: float = 0.07
    """Requests that wait 1-3 s and are then dropped unanswered: a server-side or proxy timeout."""
    p_http_500: float = 0.05
    refusal_gap_mean: float = 3.5
    refusal_window: tuple[float, float] = (0.5, 2.5)
    kill_every: tuple[float, float] = (15.0, 25.0)
    backoff_base: float = 0.5
    concurrency: int = 8
    await_cooldowns: bool = False
    """After converging, also wait for every documented cool-down to end and then for the strict end state."""


@dataclass(slots=True)
class Violation:
    at: float
    """Seconds since the soak started."""
    invariant: str
    detail: str


@dataclass(slots=True)
class SoakReport:
    seed: int
    backend: str
    chaos_seconds: float
    figures: dict[str, Any]
    violations: list[Violation]
    converged_after: float | None
    problems_at_end: list[str]
    verify_exit: int | None
    verify_output: str
    figures_file: Path | None = None

    def summary(self) -> str:
        f = self.figures
        lines = [
            f"chaos soak ({self.backend}) seed={self.seed} chaos={self.chaos_seconds:g}s "
            f"(replay: MODELADAPTER_SOAK_SEED={self.seed} MODELADAPTER_SOAK_SECONDS={self.chaos_seconds:g})",
            "  faults: " + ", ".join(f"{k}={v}" for k, v in sorted(f["faults"].items())),
            f"  operator: kills={f['operator']['kills']} restarts={f['operator']['restarts']} "
            f"processes={f['operator']['processes']} "
            f"exits on its own={f['operator']['exits on its own (restarted like a kubelet would)']}",
            "  adapters: " + ", ".join(f"{k}={v}" for k, v in sorted(f["adapters"].items())),
            "  engine calls: " + ", ".join(f"{k}={v}" for k, v in sorted(f["engine_calls"].items())),
            f"  log: {f['log']}",
            f"  longest instance mismatch: {f['longest_instance_mismatch']}",
            "  converged after the last fault: "
            + (f"{self.converged_after:.1f}s" if self.converged_after is not None else "NO (budget 60s)"),
            f"  pods left out for the documented cool-down at convergence: "
            f"{sum(len(p) for p in f['pods_left_out_for_a_cool_down_at_convergence'].values())} "
            f"(on {len(f['pods_left_out_for_a_cool_down_at_convergence'])} adapters); strict end state after: "
            f"{f['strict_converge_seconds']}",
            f"  modeladapter verify exit status: {self.verify_exit}",
            f"  the last operator stopped on SIGTERM in: {f.get('operator stop seconds', 'not stopped')}s",
            f"  the engines' API key searched for in {f.get('secret_leak_check', {}).get('characters', 0):,} characters "
            f"of output: {f.get('secret_leak_check', {}).get('leaks', 'not searched')} leaks",
            f"  invariant violations: {len(self.violations)}",
        ]
        lines += [f"    ! {v.at:7.1f}s [{v.invariant}] {v.detail}" for v in self.violations[:40]]
        lines += [f"    ? {p}" for p in self.problems_at_end[:40]]
        if self.figures_file is not None:
            lines.append(f"  figures: {self.figures_file}")
        if f.get("histories_of_problem_adapters"):
            lines.append(f"  the event log of every adapter named above: {f['histories_of_problem_adapters']}")
        return "\n".join(lines)


# --- the world -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PodSlot:
    """One pod name, always at the same IP with the same labels (a StatefulSet's pod), and its engine."""

    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    engine: ChaosEngine
    present: bool = False
    terminating: bool = False


@dataclass(slots=True)
class AdapterRecord:
    name: str
    namespace: str
    selector: dict[str, str]
    replicas: int | None
    artifact: str
    scheduler: str
    selectors_ever: list[dict[str, str]] = field(default_factory=list)
    exists: bool = False
    """Created and not deleted by the soak (the object may still be terminating after a delete)."""
    ever_deleted: bool = False

    @property
    def valid(self) -> bool:
        return self.artifact != BROKEN_ARTIFACT

    def manifest(self) -> Raw:
        spec: Raw = {
            "baseModel": BASE_MODEL,
            "podSelector": {"matchLabels": dict(self.selector)},
            "artifactURL": self.artifact,
            "schedulerName": self.scheduler,
            "apiKeySecretRef": {"name": KEY_SECRET},
        }
        if self.replicas is not None:
            spec["replicas"] = self.replicas
        return {
            "apiVersion": ADAPTERS_GROUP,
            "kind": "ModelAdapter",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"model.aibrix.ai/name": self.name, "model.aibrix.ai/port": "8000"},
            },
            "spec": spec,
        }


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


class ChaosEngine(SimulatedEngine):
    """A simulated vLLM whose requests pass through the soak first: recorded, checked, and maybe faulted."""

    def __init__(self, soak: Soak, host: str, **options: Any) -> None:
        super().__init__(host, 8000, **options)
        self.soak = soak
        self.rng = random.Random(f"{soak.config.seed}:requests:{host}")
        self.pod_present = False
        self.refusing = False
        self.down = False

    async def sync_listening(self) -> None:
        """Listen exactly while the pod exists and no refusal window or restart is on."""
        if self.pod_present and not self.refusing and not self.down:
            await self.accept_connections()
        else:
            await self.refuse_connections()

    @web.middleware
    async def _middleware(  # type: ignore[override]
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        name: str | None = None
        if request.path in (LOAD_PATH, UNLOAD_PATH):
            try:
                name = str(json.loads(await request.read()).get("lora_name"))
            except (ValueError, AttributeError):
                name = None
        verdict = self.soak.on_engine_request(self, request.path, name)
        if verdict == "drop":
            return _drop(request)
        if verdict == "timeout":
            await self.soak.hang(TOTAL_TIMEOUT + 1.0)
            return _drop(request)
        if verdict == "proxy-timeout":
            await self.soak.hang(self.rng.uniform(1.0, 3.0))
            return _drop(request)
        if verdict == "500":
            body, content_type = Fault(status=500).answer()
            return self._respond(request, Reply(500, body, content_type))
        response = await SimulatedEngine._middleware(self, request, handler)
        if request.path in (LOAD_PATH, UNLOAD_PATH) and response.status == 200:
            self.soak.count_engine_success(request.path)
        return response


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never written: the connection is gone


# --- the soak --------------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        if config.backend not in ("sqlite", "postgres"):
            raise ValueError(f"backend is sqlite or postgres, not {config.backend!r}")
        self.config = config
        self.workdir = workdir
        self.started = time.monotonic()
        self.faults: Counter[str] = Counter()
        self.adapter_ops: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.driver_errors: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self.slots: list[PodSlot] = []
        self.records: dict[str, AdapterRecord] = {}
        self.chaos_on = False
        self.calm = asyncio.Event()
        self.refusing_seconds = 0.0
        self.operator: OperatorProcess | None = None
        self.operator_started = 0.0
        self.processes: list[OperatorProcess] = []
        self.available = 0.0
        self._last_tick = time.monotonic()
        self._mismatch_since: dict[tuple[str, str], tuple[float, float]] = {}
        self._mismatch_reported: set[tuple[str, str]] = set()
        self.longest_mismatch = (0.0, 0.0)  # (operator-available seconds, wall seconds)
        self._drift_since: dict[tuple[str, str], float] = {}
        self._drift_reported: set[tuple[str, str]] = set()
        self._prefixes: dict[str, tuple[AdapterState, set[tuple[str, frozenset[str]]]]] = {}
        self._folds: dict[str, AdapterState] = {}
        self._killed: set[int] = set()
        self.operator_exits: Counter[str] = Counter()
        self.cooling_at_convergence: dict[str, list[str]] = {}
        self.strict_converged_after: float | None = None
        self._names = 0
        self.verify_runs: Counter[str] = Counter()
        self.max_running_during_chaos = 0
        self.database_url = ""
        self.pg_database: str | None = None
        self._admin: AsyncEngine | None = None
        self._pod_churn: set[asyncio.Task[None]] = set()
        self._lock_stop: threading.Event | None = None
        self.api_key = f"soak-key-{secrets.token_urlsafe(24)}"
        """Not from the seed: a value nothing else could print by chance. It must appear nowhere (see the end)."""
        self.verify_outputs: list[str] = []
        self.histories_file: Path | None = None

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.config.seed}:{name}")

    def now(self) -> float:
        return time.monotonic() - self.started

    def violate(self, invariant: str, detail: str) -> None:
        self.violations.append(Violation(round(self.now(), 2), invariant, detail))

    # --- the engines' side of the invariants -------------------------------------------------------------

    def on_engine_request(self, engine: ChaosEngine, path: str, name: str | None) -> str:
        """What happens to one request: `serve`, `drop`, `timeout` or `500`; checks invariant 6 first."""
        route = {LOAD_PATH: "load", UNLOAD_PATH: "unload", MODELS_PATH: "models"}.get(path, "other")
        self.calls[route] += 1
        if self.chaos_on:
            self.calls[f"{route} during chaos"] += 1
        slot = self.slot_by_ip[engine.host]
        if name is not None:
            self._check_selected(slot, route, name)
        if not engine.pod_present:
            self.calls["dropped: pod gone"] += 1
            return "drop"
        if engine.refusing or engine.down:
            self.faults["engine: dropped on a kept-alive connection while refusing"] += 1
            return "drop"
        if not self.chaos_on or route == "other":
            return "serve"
        draw = engine.rng.random()
        if draw < self.config.p_timeout:
            self.faults["engine: request timeout (hung past 30 s, dropped)"] += 1
            return "timeout"
        if draw < self.config.p_timeout + self.config.p_proxy_timeout:
            self.faults["engine: request timeout (server side, dropped after 1-3 s)"] += 1
            return "proxy-timeout"
        if draw < self.config.p_timeout + self.config.p_proxy_timeout + self.config.p_http_500:
            self.faults["engine: HTTP 500"] += 1
            return "500"
        return "serve"

    def count_engine_success(self, path: str) -> None:
        self.calls["load ok" if path == LOAD_PATH else "unload ok"] += 1

    def _check_selected(self, slot: PodSlot, route: str, name: str) -> None:
        record = self.records.get(name)
        if record is None:
            self.violate("6 engine call to an unselected pod", f"{route} of unknown adapter {name!r} on {slot.name}")
            return
        if slot.namespace != record.namespace:
            self.violate(
                "6 engine call to an unselected pod",
                f"{route} of {record.namespace}/{name} on {slot.namespace}/{slot.name} (another namespace)",
            )
            return
        if not any(matches(selector, slot.labels) for selector in record.selectors_ever):
            self.violate(
                "6 engine call to an unselected pod",
                f"{route} of {record.namespace}/{name} on {slot.name} ({slot.labels}); selectors ever: "
                f"{record.selectors_ever}",
            )

    async def hang(self, seconds: float) -> None:
        """A hung request: until `seconds` pass or the faults stop."""
        try:
            await asyncio.wait_for(self.calm.wait(), seconds)
        except TimeoutError:
            pass

    # --- set-up and tear-down ----------------------------------------------------------------------------

    async def run(self) -> SoakReport:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._open_database()
        try:
            async with ApiServer() as server:
                self.server = server
                return await self._run_with(server)
        finally:
            await self._close_database()

    async def _open_database(self) -> None:
        if self.config.backend == "sqlite":
            self.database_path = self.workdir / "events.db"
            self.database_url = f"sqlite:///{self.database_path}"
            connect_args: dict[str, Any] = {}
        else:
            self.pg_database = f"ma_soak_{uuid.uuid4().hex[:10]}"
            self._admin = create_engine(POSTGRES_URL)
            async with self._admin.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(f'CREATE DATABASE "{self.pg_database}"'))
            base = POSTGRES_URL.rsplit("/", 1)[0]
            self.database_url = f"{base}/{self.pg_database}"
            connect_args = {"server_settings": {"application_name": CHECKER_APP}}
        self.db = create_engine(self.database_url, connect_args=connect_args)
        await migrations.upgrade(self.db)
        self.store = SqlEventStore(self.db)

    async def _close_database(self) -> None:
        await self.store.close()
        await self.db.dispose()
        if self._admin is not None and self.pg_database is not None:
            async with self._admin.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                    {"db": self.pg_database},
                )
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_database}"'))
            await self._admin.dispose()

    async def _run_with(self, server: ApiServer) -> SoakReport:
        server.seed(modeladapter_crd())
        server.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})
        for namespace in ("default", "team-b"):
            server.seed({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                         "metadata": {"name": KEY_SECRET, "namespace": namespace},
                         "data": {"api-key": base64.b64encode(self.api_key.encode()).decode()}})  # fmt: skip
        self.kubeconfig = server.write_kubeconfig(self.workdir / "kubeconfig")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        hub = {
            ARTIFACTS[0].removeprefix("huggingface://"): write_peft_adapter(self.workdir / "hub" / "lora-a"),
            ARTIFACTS[1].removeprefix("huggingface://"): write_peft_adapter(self.workdir / "hub" / "lora-b"),
        }
        async with client.ApiClient(cfg) as api:
            self.kube = Kube(api)
            self.kubelet = SimulatedKubelet(api)
            try:
                await self._start_engines(hub)
                for slot in self.slots:
                    await self._create_pod(slot)
                self._spawn_operator()
                for record in self._initial_adapters():
                    await self._create(record)
                return await self._soak()
            finally:
                for process in self.processes:
                    process.kill()
                for slot in self.slots:
                    await slot.engine.stop()

    async def _start_engines(self, hub: dict[str, Path]) -> None:
        """The engines on a block of loopback addresses nobody else uses (other test runs share the machine)."""
        picker = random.Random()  # not the seed's: where the engines listen changes nothing in the plan
        for _ in range(20):
            # 127.0.0.x is the e2e suites', 127.64-250.x.x other reliability tests' (tests/reliability/conftest.py).
            block = f"127.{picker.randint(10, 63)}.{picker.randint(1, 250)}"
            self._make_slots(hub, block)
            try:
                for slot in self.slots:
                    await slot.engine.start()
            except OSError:
                for slot in self.slots:
                    await slot.engine.stop()
                continue
            return
        raise RuntimeError("no free block of loopback addresses for the engines")

    def _make_slots(self, hub: dict[str, Path], block: str) -> None:
        layout: list[tuple[str, str, dict[str, str]]] = []
        for index in range(8):
            layout.append((f"{BASE_MODEL}-{index}", "default", {**BASE_LABELS, "pool": "a" if index < 4 else "b"}))
        for index in range(2):
            layout.append((f"llama-3-8b-instruct-{index}", "default", {**OTHER_LABELS, "pool": "a"}))
        for index in range(2):
            layout.append((f"{BASE_MODEL}-b{index}", "team-b", {**BASE_LABELS, "pool": "a"}))
        self.slots = []
        for index, (name, namespace, labels) in enumerate(layout):
            ip = f"{block}.{2 + index}"
            engine = ChaosEngine(self, ip, hub=hub, api_key=self.api_key)
            self.slots.append(PodSlot(name, namespace, labels, ip, engine))
        self.slot_by_ip = {slot.ip: slot for slot in self.slots}
        self.slot_by_pod = {(slot.namespace, slot.name): slot for slot in self.slots}

    def _initial_adapters(self) -> list[AdapterRecord]:
        rng = self.rng("adapters")
        records = []
        for index in range(self.config.adapters):
            namespace = "team-b" if index % 9 == 8 else "default"
            records.append(self._new_record(rng, namespace, broken=index in (5, 23, 41)))
        return records

    def _new_record(self, rng: random.Random, namespace: str, *, broken: bool = False) -> AdapterRecord:
        self._names += 1
        prefix = "b" if namespace == "team-b" else "d"
        if namespace == "team-b":
            selector = dict(BASE_LABELS)
        else:
            selector = rng.choice(
                [dict(BASE_LABELS), dict(BASE_LABELS), {**BASE_LABELS, "pool": "a"}, {**BASE_LABELS, "pool": "b"}]
            )
        return AdapterRecord(
            name=f"{prefix}-lora-{self._names:03d}",
            namespace=namespace,
            selector=selector,
            replicas=(None, 1, 2)[self._names % 3],
            artifact=BROKEN_ARTIFACT if broken else rng.choice(ARTIFACTS),
            scheduler=rng.choice(SCHEDULERS),
        )

    # --- the operator ------------------------------------------------------------------------------------

    def _spawn_operator(self) -> OperatorProcess:
        port = free_port()
        identity = f"soak-operator-{len(self.processes) + 1}"
        command = [
            str(Path(sys.executable).parent / "modeladapter"), "run",
            "--kubeconfig", str(self.kubeconfig),
            "--database-url", self.database_url,
            "--stability-window", "0",
            "--drain-seconds", "0.5",
            "--backoff-base", f"{self.config.backoff_base:g}",
            "--verify-interval", f"{VERIFY_INTERVAL:g}",
            "--probe-address", f"127.0.0.1:{port}",
            "--identity", identity,
            "--lease-namespace", "default",
            "--lease-duration", f"{LEASE_DURATION:g}", "--renew-deadline", "2", "--retry-period", "0.5",
            "--log-format", "json",
            "--log-level", os.environ.get("MODELADAPTER_SOAK_LOG_LEVEL", "info"),
            "--concurrency", str(self.config.concurrency),
        ]  # fmt: skip
        log_file = self.workdir / f"{identity}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELADAPTER_")}
        environment["PYTHONFAULTHANDLER"] = "1"  # SIGABRT (a stop that hangs) writes every thread's stack
        with log_file.open("ab") as handle:
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                       env=environment)  # fmt: skip
        self.operator = OperatorProcess(process, port, log_file)
        self.operator_started = time.monotonic()
        self.processes.append(self.operator)
        return self.operator

    def _operator_alive(self) -> bool:
        return self.operator is not None and self.operator.process.poll() is None

    def tick(self) -> float:
        """Advance the operator-available clock (see invariant 2) and return it."""
        now = time.monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        if self._operator_alive() and now - self.operator_started >= STARTUP:
            self.available += elapsed
        return self.available

    # --- cluster actions ---------------------------------------------------------------------------------

    async def _create_pod(self, slot: PodSlot) -> None:
        slot.engine.forget_everything()
        slot.engine.pod_present = True
        await slot.engine.sync_listening()
        await self.kubelet.create_pod(slot.name, slot.namespace, labels=slot.labels, ip=slot.ip,
                                      since=datetime.now(UTC))  # fmt: skip
        slot.present, slot.terminating = True, False

    async def _remove_pod(self, slot: PodSlot, *, grace: float) -> None:
        """Graceful deletion: a deletionTimestamp for `grace` s, then the container stops, then the object goes."""
        await self.kubelet.terminate(slot.name, slot.namespace)
        slot.terminating = True
        await asyncio.sleep(grace)
        slot.engine.pod_present = False
        slot.engine.forget_everything()
        await slot.engine.sync_listening()
        await self.kubelet.delete(slot.name, slot.namespace)
        slot.present, slot.terminating = False, False

    async def _create(self, record: AdapterRecord) -> None:
        record.selectors_ever.append(dict(record.selector))
        self.records[record.name] = record
        await self.kube.create(MODELADAPTERS, record.namespace, record.manifest())
        record.exists = True
        self.adapter_ops["created"] += 1

    # --- the run -----------------------------------------------------------------------------------------

    async def _soak(self) -> SoakReport:
        config = self.config
        self.chaos_on = True
        drivers = [
            self._loop("operator-kills", config.kill_every, self._kill_operator),
            self._loop("unloads-by-another-client", (0.2, 1.8), self._unload_by_another_client),
            self._loop("lru-evictions", (0.2, 1.8), self._evict),
            self._loop("engine-restarts", (4.0, 8.0), self._restart_engine),
            self._loop("pod-churn", (2.0, 5.0), self._churn_pod),
            self._loop("watch-cuts", (2.0, 5.0), self._cut_watches),
            self._loop("database-drops", (6.0, 12.0), self._drop_database),
            self._loop("adapter-churn", (0.5, 1.5), self._churn_adapter),
            *(self._refusals(slot) for slot in self.slots),
        ]
        tasks = [asyncio.create_task(driver) for driver in drivers]
        checkers = [
            asyncio.create_task(self._every(0.5, self._check_cluster)),
            asyncio.create_task(self._every(3.0, self._check_log_sql)),
            asyncio.create_task(self._every(12.0, self._check_verify)),
            asyncio.create_task(self._every(0.5, self._supervise)),
        ]
        try:
            await asyncio.sleep(config.chaos_seconds)
            await self._stop_faults(tasks)
            calm_at = time.monotonic()
            converged_after, problems = await self._converge(calm_at)
        finally:
            for task in [*tasks, *checkers, *self._pod_churn]:
                task.cancel()
            await asyncio.gather(*tasks, *checkers, *self._pod_churn, return_exceptions=True)
            if self._lock_stop is not None:
                self._lock_stop.set()
        # The end: exact checks.
        await self._check_cluster(final=True)
        await self._check_log_sql()
        verify_exit, verify_output = await self._final_verify()
        metrics = await self._scrape_metrics()
        await self._write_histories(problems)
        figures = await self._figures(converged_after)
        if self.operator is not None:
            figures["operator stop seconds"] = round(await self._stop_operator(self.operator), 2)
        figures["secret_leak_check"] = await self._check_secret_leaks(metrics)
        report = SoakReport(self.config.seed, self.config.backend, self.config.chaos_seconds, figures,
                            self.violations, converged_after, problems, verify_exit, verify_output)  # fmt: skip
        report.figures["violations"] = [asdict(v) for v in self.violations]
        report.figures["problems_at_end"] = problems
        report.figures_file = self.workdir / "soak-figures.json"
        report.figures_file.write_text(json.dumps(report.figures, indent=2, default=str))
        return report

    async def _write_histories(self, problems: list[str]) -> None:
        """`modeladapter events` of every adapter a problem or a violation names, to `histories.txt` (the
        PostgreSQL database is dropped after the run; this is what explains a failure afterwards)."""
        named = {p.split(":", 1)[0] for p in problems}
        named |= {word.split("/", 1)[1] for v in self.violations for word in v.detail.split() if word.count("/") == 1
                  and word.split("/", 1)[0] in ("default", "team-b")}  # fmt: skip
        if not named:
            return
        with (self.workdir / "histories.txt").open("w") as out:
            for name in sorted(named):
                record = self.records.get(name)
                namespace = record.namespace if record is not None else "default"
                command = [str(Path(sys.executable).parent / "modeladapter"), "events", "--adapter", name, "-n", namespace,
                           "--database-url", self.database_url]  # fmt: skip
                process = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    env={k: v for k, v in os.environ.items() if not k.startswith("MODELADAPTER_")},
                )  # fmt: skip
                output, _ = await process.communicate()
                out.write(f"===== {namespace}/{name} (exit {process.returncode})\n{output.decode(errors='replace')}\n")
        self.histories_file = self.workdir / "histories.txt"

    async def _scrape_metrics(self) -> str:
        if self.operator is None:
            return ""
        try:
            async with httpx.AsyncClient() as http:
                answer = await http.get(f"http://127.0.0.1:{self.operator.probe_port}/metrics", timeout=10)
        except httpx.HTTPError as error:
            self.violate("security", f"could not read the last operator's /metrics to check it: {error!r}")
            return ""
        return answer.text

    async def _check_secret_leaks(self, metrics: str) -> dict[str, Any]:
        """Security: the engines' API key (a Secret's content, sent on every engine call) appears nowhere in the
        whole output of the run: the operators' logs, /metrics, Kubernetes Events, the adapters' status and
        annotations, Services, EndpointSlices, Leases, every verify output, and the event log."""
        async with self.db.connect() as connection:
            log_rows = [
                *(await connection.execute(select(events))).all(),
                *(await connection.execute(select(streams))).all(),
            ]
        places: dict[str, str] = {
            **{process.log_file.name: process.log() for process in self.processes},
            "/metrics": metrics,
            "verify outputs": "\n".join(self.verify_outputs),
            "the event log": "\n".join(repr(tuple(row)) for row in log_rows),
        }
        for api_version, kind in (("v1", "Event"), (ADAPTERS_GROUP, "ModelAdapter"), ("v1", "Service"),
                                  ("discovery.k8s.io/v1", "EndpointSlice"), ("coordination.k8s.io/v1", "Lease")):  # fmt: skip
            places[f"{kind}s"] = json.dumps(self.server.objects(api_version, kind), ensure_ascii=False)
        if not places["the event log"] or not any(p.log_file.stat().st_size for p in self.processes):
            self.violate("security", "nothing to search: the event log or the operators' logs are empty")
        leaked = [place for place, content in places.items() if self.api_key in content]
        for place in leaked:
            self.violate("security", f"the engines' API key appears in {place}")
        return {"places": sorted(places), "characters": sum(len(c) for c in places.values()), "leaks": len(leaked)}

    async def _stop_operator(self, operator: OperatorProcess) -> float:
        """SIGTERM must stop the operator cleanly (status 0) within 20 s; if it does not, SIGABRT makes Python's
        faulthandler write every thread's stack to its log, and the end of that log goes into the report (the
        work directory is gone once CI ends). Returns how long the stop took."""
        began = time.monotonic()
        try:
            code = await operator.terminate(timeout=20.0)
        except AssertionError:
            operator.process.send_signal(signal.SIGABRT)
            await asyncio.sleep(2.0)
            operator.kill()
            tail = "\n".join(operator.log().splitlines()[-60:])
            self.violate(
                "operator",
                f"the last operator did not stop within 20 s of SIGTERM; the end of {operator.log_file}:\n{tail}",
            )
            return time.monotonic() - began
        if code != 0:
            self.violate("operator", f"the last operator exited {code} on SIGTERM; see {operator.log_file}")
        return time.monotonic() - began

    async def _loop(
        self, name: str, every: tuple[float, float], action: Callable[[random.Random], Awaitable[None]]
    ) -> None:
        rng = self.rng(name)
        while True:
            await asyncio.sleep(rng.uniform(*every))
            try:
                await action(rng)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a fault that could not be injected is counted, never hidden
                self.driver_errors[f"{name}: {type(error).__name__}: {str(error)[:120]}"] += 1

    async def _every(self, seconds: float, check: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await check()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # an invariant that could not be checked must not pass silently
                self.violate("checker", f"{check.__name__} failed: {type(error).__name__}: {str(error)[:300]}")

    # --- the faults --------------------------------------------------------------------------------------

    async def _kill_operator(self, rng: random.Random) -> None:
        if self.operator is not None and self.operator.process.poll() is None:
            self._killed.add(self.operator.process.pid)
            self.operator.kill()
            self.faults["operator: SIGKILL"] += 1
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        self._spawn_operator()

    async def _supervise(self) -> None:
        """Like a kubelet: an operator process that ended by itself (not our SIGKILL) is counted and restarted."""
        operator = self.operator
        if operator is None or (code := operator.process.poll()) is None or operator.process.pid in self._killed:
            return
        self._killed.add(operator.process.pid)
        self.operator_exits[f"exit status {code}"] += 1
        self._spawn_operator()

    async def _unload_by_another_client(self, rng: random.Random) -> None:
        holding = [s for s in self.slots if s.present and s.engine.adapters]
        if holding:
            slot = rng.choice(holding)
            if slot.engine.unload_by_another_client(rng.choice(sorted(slot.engine.adapters))):
                self.faults["engine: unloaded by another client"] += 1

    async def _evict(self, rng: random.Random) -> None:
        """vLLM's LRU eviction: the adapter leaves the worker's cache and stays listed."""
        holding = [s for s in self.slots if s.present and s.engine.resident]
        if holding:
            slot = rng.choice(holding)
            if slot.engine.evict(rng.choice(sorted(slot.engine.resident))):
                self.faults["engine: LRU eviction (still listed)"] += 1

    async def _restart_engine(self, rng: random.Random) -> None:
        candidates = [s for s in self.slots if s.present and not s.engine.down]
        if not candidates:
            return
        engine = rng.choice(candidates).engine
        engine.down = True
        engine.forget_everything()
        await engine.sync_listening()
        self.faults["engine: restart"] += 1
        try:
            await asyncio.sleep(rng.uniform(0.2, 1.5))
        finally:
            engine.down = False
            engine.restarts += 1
            await engine.sync_listening()

    async def _refusals(self, slot: PodSlot) -> None:
        rng = self.rng(f"refusals:{slot.ip}")
        engine = slot.engine
        while True:
            await asyncio.sleep(rng.expovariate(1.0 / self.config.refusal_gap_mean))
            window = rng.uniform(*self.config.refusal_window)
            engine.refusing = True
            await engine.sync_listening()
            self.faults["engine: connection-refused window"] += 1
            began = time.monotonic()
            try:
                await asyncio.sleep(window)
            finally:
                self.refusing_seconds += time.monotonic() - began
                engine.refusing = False
                await engine.sync_listening()

    async def _churn_pod(self, rng: random.Random) -> None:
        out = [s for s in self.slots if not s.present or s.terminating]
        candidates = [s for s in self.slots if s.present and not s.terminating]
        if len(out) >= 2 or not candidates:
            return
        slot = rng.choice(candidates)
        grace, away = rng.uniform(0.3, 1.5), rng.uniform(0.5, 2.5)

        async def cycle() -> None:
            try:
                await self._remove_pod(slot, grace=grace)
                self.faults["pod: deleted"] += 1
                await asyncio.sleep(away)
                await self._create_pod(slot)
                self.faults["pod: re-created"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.driver_errors[f"pod-churn: {type(error).__name__}: {str(error)[:120]}"] += 1

        task = asyncio.create_task(cycle())
        self._pod_churn.add(task)
        task.add_done_callback(self._pod_churn.discard)

    async def _cut_watches(self, rng: random.Random) -> None:
        self._cuts = getattr(self, "_cuts", 0) + 1
        if self._cuts % 4 == 0:
            self.server.compact()
            self.faults["api: history compacted (410 on resume)"] += 1
            self.server.cut_watches(abort=True)
            return
        abort = rng.random() < 0.5
        cut = self.server.cut_watches(abort=abort)
        self.faults["api: watch streams dropped" if abort else "api: watch streams ended"] += cut

    async def _drop_database(self, rng: random.Random) -> None:
        if self.config.backend == "postgres":
            assert self._admin is not None
            async with self._admin.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                killed = (await connection.execute(
                    text("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
                         "WHERE datname = :db AND pid <> pg_backend_pid() "
                         "AND coalesce(application_name, '') <> :checker) AS t WHERE done"),
                    {"db": self.pg_database, "checker": CHECKER_APP},
                )).scalar_one()  # fmt: skip
            self.faults["database: pg_terminate_backend rounds"] += 1
            self.faults["database: backends terminated"] += int(killed)
            return
        seconds = rng.uniform(0.5, 3.0)
        stop = self._lock_stop = threading.Event()
        held = await asyncio.to_thread(_hold_exclusive_lock, str(self.database_path), seconds, stop)
        self.faults["database: exclusive lock held (sqlite)"] += 1
        self.faults["database: exclusive lock milliseconds"] += int(held * 1000)

    async def _churn_adapter(self, rng: random.Random) -> None:
        live = [r for r in self.records.values() if r.exists]
        weights = {"create": 1.0, "edit": 2.0, "delete": 1.0}
        if len(live) >= self.config.max_adapters:
            weights["create"] = 0.0
        if len(live) <= self.config.min_adapters:
            weights["delete"] = 0.0
        op = rng.choices(list(weights), weights=list(weights.values()))[0]
        if op == "create":
            gone = sorted(
                (
                    r
                    for r in self.records.values()
                    if not r.exists and self.server.get(ADAPTERS_GROUP, "ModelAdapter", r.namespace, r.name) is None
                ),
                key=lambda r: r.name,
            )
            if gone and rng.random() < 0.4:
                record = rng.choice(gone)
                record.selector = (
                    dict(rng.choice([BASE_LABELS, {**BASE_LABELS, "pool": "a"}]))
                    if record.namespace == "default"
                    else dict(BASE_LABELS)
                )
                record.artifact = rng.choice(ARTIFACTS)
                self.adapter_ops["re-created (same name)"] += 1
            else:
                record = self._new_record(
                    rng, "team-b" if rng.random() < 0.1 else "default", broken=rng.random() < 0.05
                )
            await self._create(record)
        elif op == "delete":
            record = rng.choice(sorted(live, key=lambda r: r.name))
            record.exists = False
            record.ever_deleted = True
            await self.kube.delete(MODELADAPTERS, record.namespace, record.name)
            self.adapter_ops["deleted"] += 1
        else:
            record = rng.choice(sorted(live, key=lambda r: r.name))
            await self._edit(rng, record)

    async def _edit(self, rng: random.Random, record: AdapterRecord) -> None:
        kinds = ["replicas", "artifact", "scheduler"]
        if record.namespace == "default":
            kinds.append("selector")
        if not record.valid:
            kinds = ["fix artifact"]
        kind = rng.choice(kinds)
        spec: Raw = {}
        changes: dict[str, Any] = {}
        if kind == "replicas":
            changes["replicas"] = rng.choice([r for r in (None, 1, 2) if r != record.replicas])
            spec["replicas"] = changes["replicas"]  # None removes it (a merge patch)
        elif kind in ("artifact", "fix artifact"):
            changes["artifact"] = spec["artifactURL"] = rng.choice([a for a in ARTIFACTS if a != record.artifact])
        elif kind == "scheduler":
            changes["scheduler"] = spec["schedulerName"] = rng.choice([s for s in SCHEDULERS if s != record.scheduler])
        else:
            choices = [dict(BASE_LABELS), {**BASE_LABELS, "pool": "a"}, {**BASE_LABELS, "pool": "b"}]
            selector = changes["selector"] = rng.choice([c for c in choices if c != record.selector])
            # Recorded before it is applied, so that invariant 6 never misses a selector the operator may see.
            record.selectors_ever.append(dict(selector))
            dropped = {key: None for key in record.selector if key not in selector}
            spec["podSelector"] = {"matchLabels": {**selector, **dropped}}
        try:
            await self.kube.patch(MODELADAPTERS, record.namespace, record.name, {"spec": spec})
        except KubeError as error:
            self.adapter_ops[f"edit not applied ({type(error).__name__})"] += 1
            return
        for key, value in changes.items():
            setattr(record, key, value)
        self.adapter_ops[f"edited: {kind}"] += 1

    async def _stop_faults(self, tasks: list[asyncio.Task[None]]) -> None:
        """The faults stop: drivers end, hung requests are released, every engine listens, every pod is back."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._pod_churn):
            task.cancel()
        await asyncio.gather(*self._pod_churn, return_exceptions=True)
        if self._lock_stop is not None:
            self._lock_stop.set()
        self.chaos_on = False
        self.calm.set()
        for slot in self.slots:
            slot.engine.refusing = slot.engine.down = False
            # From what the API server holds, not from the slot's flags: a cancelled pod cycle may be mid-way.
            pod = self.server.get("v1", "Pod", slot.namespace, slot.name)
            if pod is not None and (pod["metadata"].get("deletionTimestamp") or not slot.engine.pod_present):
                await self._remove_pod(slot, grace=0.0)
                pod = None
            if pod is None:
                await self._create_pod(slot)
                self.faults["pod: re-created"] += 1
            slot.present, slot.terminating = True, False
            await slot.engine.sync_listening()
        if not self._operator_alive():
            self._spawn_operator()
        self.chaos_ended_at = self.now()

    # --- invariants while it runs ------------------------------------------------------------------------

    async def _check_cluster(self, *, final: bool = False) -> None:
        available = self.tick()
        objects = self.server.objects(ADAPTERS_GROUP, "ModelAdapter")
        present_names = {o["metadata"]["name"] for o in objects}
        running = 0
        seen_mismatches: set[tuple[str, str]] = set()
        to_check: list[tuple[str, str, frozenset[str]]] = []
        for adapter in objects:
            metadata = adapter["metadata"]
            name, namespace, uid = metadata["name"], metadata["namespace"], metadata["uid"]
            status = adapter.get("status") or {}
            instances = list(status.get("instances") or [])
            if status.get("phase") == "Running":
                running += 1
                if not instances or status.get("readyReplicas") != len(instances):
                    self.violate("1 Running without a verified instance",
                                 f"{namespace}/{name} Running with instances={instances} "
                                 f"readyReplicas={status.get('readyReplicas')}")  # fmt: skip
                else:
                    to_check.append((uid, f"{namespace}/{name}", frozenset(instances)))
            for pod in instances:
                slot = self.slot_by_pod.get((namespace, pod))
                ok = slot is not None and slot.present and not slot.terminating and name in slot.engine.adapters
                if ok:
                    continue
                key = (uid, pod)
                seen_mismatches.add(key)
                since = self._mismatch_since.setdefault(key, (available, time.monotonic()))
                staleness = (available - since[0], time.monotonic() - since[1])
                if staleness[0] > self.longest_mismatch[0]:
                    self.longest_mismatch = staleness
                    self.longest_mismatch_at = f"{namespace}/{name} on {pod} (from {self.now() - staleness[1]:.1f}s)"
                if (final or staleness[0] > STALENESS_BUDGET) and key not in self._mismatch_reported:
                    self._mismatch_reported.add(key)
                    why = ("no such pod" if slot is None or not slot.present else
                           "pod terminating" if slot.terminating else "engine does not list it")  # fmt: skip
                    self.violate("2 instance names a pod whose engine does not list the adapter",
                                 f"{namespace}/{name} instance {pod}: {why}, for {staleness[0]:.1f}s of operator "
                                 f"time ({staleness[1]:.1f}s wall)")  # fmt: skip
        for key in list(self._mismatch_since):
            if key not in seen_mismatches:
                del self._mismatch_since[key]
        if self.chaos_on:
            self.max_running_during_chaos = max(self.max_running_during_chaos, running)
        # 5. deleted adapters are unloaded from every live pod
        for record in self.records.values():
            if record.ever_deleted and record.name not in present_names:
                for slot in self.slots:
                    if slot.present and slot.engine.pod_present and record.name in slot.engine.adapters:
                        key = ("ghost", f"{record.name}@{slot.name}")
                        if key not in self._mismatch_reported:
                            self._mismatch_reported.add(key)
                            self.violate(
                                "5 deleted adapter still loaded",
                                f"{record.namespace}/{record.name} is gone but {slot.name}'s engine lists it",
                            )
        # 1. the status is a projection of a prefix of the log
        for uid, label, instances in to_check:
            if not await self._was_projected(uid, instances):
                self.violate("1 Running without a verified instance",
                             f"{label} is Running with instances {sorted(instances)}, which no prefix of its log "
                             "folds to (Running with those placements Loaded)")  # fmt: skip

    async def _was_projected(self, uid: str, instances: frozenset[str]) -> bool:
        state, seen = self._prefixes.get(uid, (AdapterState(), set()))
        if ("Running", instances) in seen:
            return True
        for event in await self.store.read(uid, after=state.version):
            state = fold([event], state)
            if state.phase is Phase.RUNNING:
                seen.add(("Running", frozenset(state.instances)))
        self._prefixes[uid] = (state, seen)
        return ("Running", instances) in seen

    async def _check_log_sql(self) -> None:
        """Invariant 3, by SQL: versions 1..n per stream, positions 1..N, unique event ids."""
        async with self.db.connect() as connection:
            streams = (await connection.execute(text(
                "SELECT e.stream_id, count(*), min(e.version), max(e.version), count(DISTINCT e.version), "
                "max(s.version) FROM adapter_events e JOIN adapter_streams s ON s.stream_id = e.stream_id "
                "GROUP BY e.stream_id"
            ))).all()  # fmt: skip
            totals = (await connection.execute(text(
                "SELECT count(*), count(DISTINCT event_id), count(DISTINCT position), min(position), max(position) "
                "FROM adapter_events"
            ))).one()  # fmt: skip
        for stream_id, count, low, high, distinct, stream_version in streams:
            if not (low == 1 and high == count == distinct and stream_version == high):
                key = ("stream", stream_id)
                if key not in self._mismatch_reported:
                    self._mismatch_reported.add(key)
                    self.violate("3 log malformed", f"stream {stream_id}: {count} events, versions {low}..{high} "
                                 f"({distinct} distinct), adapter_streams.version {stream_version}")  # fmt: skip
        count, ids, positions, low, high = totals
        if count and not (ids == count and positions == count and low == 1 and high == count):
            key = ("positions", str(count))
            if key not in self._mismatch_reported:
                self._mismatch_reported.add(key)
                self.violate("3 log malformed", f"{count} events, {ids} distinct event ids, {positions} distinct "
                             f"positions {low}..{high}")  # fmt: skip
        self.log_figures = {"events": count, "streams": len(streams)}

    async def _run_verify(self) -> tuple[int, str]:
        command = [
            str(Path(sys.executable).parent / "modeladapter"), "verify", "-A", "-o", "json",
            "--kubeconfig", str(self.kubeconfig), "--database-url", self.database_url,
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("MODELADAPTER_")},
        )  # fmt: skip
        output, _ = await process.communicate()
        text_output = output.decode(errors="replace")
        self.verify_outputs.append(text_output)
        return int(process.returncode or 0), text_output

    async def _check_verify(self) -> None:
        """Invariant 4 while the faults run: a drift that persists (not the append-then-patch race)."""
        code, output = await self._run_verify()
        available = self.tick()
        self.verify_runs[f"exit {code}"] += 1
        if code not in (0, 1):
            return  # e.g. its database connection was terminated by the fault: inconclusive
        drifts = json.loads(output)["drifts"]
        current: set[tuple[str, str]] = set()
        for drift in drifts:
            if drift["note"] and "moved on" in drift["note"]:
                continue
            key = (str(drift["uid"]), str(drift["field"]))
            current.add(key)
            since = self._drift_since.setdefault(key, available)
            if available - since > STALENESS_BUDGET and key not in self._drift_reported:
                self._drift_reported.add(key)
                self.violate("4 verify drift persists",
                             f"{drift['namespace']}/{drift['name']} {drift['field']}: log {drift['log']!r}, cluster "
                             f"{drift['cluster']!r} for {available - since:.1f}s of operator time")  # fmt: skip
        for key in list(self._drift_since):
            if key not in current:
                del self._drift_since[key]

    # --- the end -----------------------------------------------------------------------------------------

    async def _folded(self, uid: str) -> AdapterState:
        state = self._folds.get(uid, AdapterState())
        state = fold(await self.store.read(uid, after=state.version), state)
        self._folds[uid] = state
        return state

    async def _cooling(self, uid: str) -> dict[str, datetime]:
        """Pods on which the adapter's placement is exhausted and resting (the documented cool-down, 300 s):
        pod -> when it may be reconsidered. The operator does not use them until then."""
        now = datetime.now(UTC)
        return {
            p.pod: p.next_retry_at
            for p in (await self._folded(uid)).placements
            if p.state is PlacementState.EXHAUSTED and p.next_retry_at is not None and p.next_retry_at > now
        }

    async def _halted_on(self, uid: str) -> str | None:
        """The pod the adapter's rollout is halted on, if it is."""
        rollout = (await self._folded(uid)).rollout
        return rollout.halted_on if rollout is not None and rollout.in_progress else None

    async def _end_problems(self, *, strict: bool) -> tuple[list[str], dict[str, dict[str, datetime]]]:
        """What still differs from the converged world (empty: converged), and the cool-downs that were allowed.

        Converged: every deleted adapter is gone; every valid adapter is Running with its desired replicas,
        each instance a matching pod whose engine serves it from the spec's artifact; a broken one is not
        Running; no engine holds a copy that is not an instance. Unless `strict`, pods on which the log shows
        the adapter's placement exhausted and still in its cool-down are left out of the desired replicas (an
        adapter whose every matching pod rests must be Failed), and a copy on such a pod is accounted for
        (the log says the placement may hold it; it is reconsidered or unloaded when the cool-down ends), and
        while the rollout is halted on such a pod the other instances may serve the older artifact.
        """
        problems = []
        allowed: dict[str, dict[str, datetime]] = {}
        objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                   for o in self.server.objects(ADAPTERS_GROUP, "ModelAdapter")}  # fmt: skip
        for record in sorted(self.records.values(), key=lambda r: r.name):
            obj = objects.get((record.namespace, record.name))
            if not record.exists:
                if obj is not None:
                    problems.append(
                        f"{record.name}: deleted but still there (phase {(obj.get('status') or {}).get('phase')})"
                    )
                continue
            if obj is None:
                problems.append(f"{record.name}: missing")
                continue
            status = obj.get("status") or {}
            generation = obj["metadata"].get("generation")
            if status.get("observedGeneration") != generation:
                problems.append(f"{record.name}: observedGeneration {status.get('observedGeneration')} != {generation}")
            instances = set(status.get("instances") or [])
            if not record.valid:
                if status.get("phase") == "Running" or instances:
                    problems.append(f"{record.name}: broken artifact yet {status.get('phase')} {sorted(instances)}")
                continue
            matching = {
                s.name for s in self.slots if s.namespace == record.namespace and matches(record.selector, s.labels)
            }
            cooling = {} if strict else await self._cooling(obj["metadata"]["uid"])
            usable = matching - set(cooling)
            desired = len(usable) if record.replicas is None else min(record.replicas, len(usable))
            if cooling:
                allowed[record.name] = cooling
            if desired == 0:
                if status.get("phase") != "Failed" or instances:
                    problems.append(f"{record.name}: every matching pod is cooling down, want Failed, got "
                                    f"{status.get('phase')} {sorted(instances)}")  # fmt: skip
                continue
            if status.get("phase") != "Running" or status.get("readyReplicas") != desired or len(instances) != desired:
                problems.append(f"{record.name}: phase {status.get('phase')} ready {status.get('readyReplicas')} "
                                f"instances {sorted(instances)}, want Running with {desired} "
                                f"(replicas {record.replicas}, selector {record.selector}, cooling {sorted(cooling)})")  # fmt: skip
                continue
            lora_path = record.artifact.removeprefix("huggingface://")
            halted_on_a_resting_pod = not strict and await self._halted_on(obj["metadata"]["uid"]) in cooling
            for pod in instances:
                slot = self.slot_by_pod.get((record.namespace, pod))
                served = slot.engine.adapters.get(record.name) if slot is not None else None
                older = served is not None and served.path != lora_path and halted_on_a_resting_pod
                if pod not in matching or served is None or (served.path != lora_path and not older):
                    problems.append(f"{record.name}: instance {pod} not serving {lora_path} ({served})")
        for slot in self.slots:
            for name in slot.engine.adapters:
                obj = objects.get((slot.namespace, name))
                instances = ((obj or {}).get("status") or {}).get("instances") or []
                if slot.name not in instances and slot.name not in allowed.get(name, {}):
                    problems.append(f"{slot.name}'s engine holds {name}, which does not count it as an instance")
        return problems, allowed

    async def _converge(self, calm_at: float) -> tuple[float | None, list[str]]:
        """Wait (at most 60 s) for the converged world; then, if asked, for the cool-downs to end too."""
        deadline = calm_at + CONVERGE_BUDGET
        problems: list[str] = []
        converged: float | None = None
        while time.monotonic() < deadline:
            problems, allowed = await self._end_problems(strict=False)
            if not problems:
                converged = time.monotonic() - calm_at
                break
            await asyncio.sleep(0.5)
        if converged is None:
            return None, problems
        self.cooling_at_convergence = {name: sorted(pods) for name, pods in allowed.items()}
        if not allowed:
            self.strict_converged_after = converged
        elif self.config.await_cooldowns:
            latest = max(t for pods in allowed.values() for t in pods.values())
            until = time.monotonic() + max(0.0, (latest - datetime.now(UTC)).total_seconds()) + CONVERGE_BUDGET
            while time.monotonic() < until:
                strict_problems, _ = await self._end_problems(strict=True)
                if not strict_problems:
                    self.strict_converged_after = time.monotonic() - calm_at
                    break
                await asyncio.sleep(1.0)
            else:
                self.violate("end: not converged after the cool-downs", "; ".join(strict_problems[:20]))
        return converged, []

    async def _final_verify(self) -> tuple[int | None, str]:
        code, output = await self._run_verify()
        for _ in range(3):  # only the documented race (log moved on during the check) earns a re-run
            if code != 1 or any(not (d["note"] and "moved on" in d["note"]) for d in json.loads(output)["drifts"]):
                break
            await asyncio.sleep(1.0)
            code, output = await self._run_verify()
        if code != 0:
            self.violate("4 verify drift persists", f"modeladapter verify -A exited {code}: {output[:2000]}")
        return code, output

    async def _figures(self, converged_after: float | None) -> dict[str, Any]:
        faults = dict(self.faults)
        faults["engine: refusing engine-seconds"] = round(self.refusing_seconds, 1)
        served = sum(self.calls[f"{route} during chaos"] for route in ("load", "unload", "models"))
        faulted = sum(
            v for k, v in self.faults.items() if k.startswith("engine: request timeout") or k == "engine: HTTP 500"
        )
        return {
            "seed": self.config.seed,
            "backend": self.config.backend,
            "chaos_seconds": self.config.chaos_seconds,
            "pods": len(self.slots),
            "faults": faults,
            "engine_request_fault_share": round(faulted / served, 3) if served else 0.0,
            "refusing_share_of_engine_time": round(
                self.refusing_seconds / (len(self.slots) * self.config.chaos_seconds), 3
            ),
            "operator": {
                "kills": self.faults["operator: SIGKILL"],
                "restarts": len(self.processes) - 1,
                "processes": len(self.processes),
                "exits on its own (restarted like a kubelet would)": dict(self.operator_exits),
            },
            "adapters": {
                **dict(self.adapter_ops),
                "distinct names": len(self.records),
                "live at the end": sum(1 for r in self.records.values() if r.exists),
                "max Running during chaos": self.max_running_during_chaos,
            },  # fmt: skip
            "engine_calls": dict(self.calls),
            "log": getattr(self, "log_figures", {}),
            "verify_runs_during_chaos": dict(self.verify_runs),
            "longest_instance_mismatch": {
                "operator_available_seconds": round(self.longest_mismatch[0], 1),
                "wall_seconds": round(self.longest_mismatch[1], 1),
                "budget_operator_seconds": STALENESS_BUDGET,
                "where": getattr(self, "longest_mismatch_at", None),
            },
            "converge_seconds_after_last_fault": round(converged_after, 2) if converged_after is not None else None,
            "converge_budget_seconds": CONVERGE_BUDGET,
            "pods_left_out_for_a_cool_down_at_convergence": self.cooling_at_convergence,
            "strict_converge_seconds": round(self.strict_converged_after, 2)
            if self.strict_converged_after is not None
            else None,
            "driver_errors": dict(self.driver_errors),
            "invariant_violations": len(self.violations),
            "histories_of_problem_adapters": str(self.histories_file) if self.histories_file else None,
        }


def _hold_exclusive_lock(path: str, seconds: float, stop: threading.Event) -> float:
    """Another process's writer on the SQLite file: `BEGIN EXCLUSIVE` for `seconds` (or until `stop`)."""
    connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        began = time.monotonic()
        stop.wait(seconds)
        connection.execute("ROLLBACK")
        return time.monotonic() - began
    finally:
        connection.close()
