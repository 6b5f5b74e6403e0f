"""`modeladapter sandbox`: the whole system on one machine, in one process, with no cluster.

The flags are declared by the CLI (`modeladapter.operator.cli.main`); `run_sandbox(args)` checks them, starts a
`SandboxSession`, applies the sample adapter (or the `-f` files), and prints the log live until Ctrl-C (exit
0), or, with `--exit-when-running`, until every applied adapter is Running (exit 0) or `--timeout` passes
(exit 1, with what each adapter is stuck on). Bad input and an unusable environment (a busy port, a locked
state directory, an unprepared vLLM lane, an adapter the API server rejects) end with one line on stderr and
exit status 2.

The operator's own log goes to `<state dir>/operator.log` (text, INFO), so that the terminal shows the event
log's story and nothing else; errors are also printed to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import secrets
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from modeladapter.fsm.events import LoadFailed, SpecRejected, UnloadFailed
from modeladapter.fsm.state import fold
from modeladapter.operator.audit.narration import clock
from modeladapter.operator.controller.logs import configure_logging, make_handler
from modeladapter.operator.controller.settings import parse_seconds
from modeladapter.operator.kube.client import KubeError
from modeladapter.sandbox.addresses import FIRST_POD_IP, LAST_POD_IP, max_pods
from modeladapter.sandbox.chaos import Chaos, ChaosPlan, start_chaos
from modeladapter.sandbox.documents import (
    AdapterRef,
    Manifest,
    ManifestProblem,
    read_manifests,
    ref,
    sample_adapter,
)
from modeladapter.sandbox.engine.aibrix_lane import RuntimeLane
from modeladapter.sandbox.engine.vllm_lane import Lane
from modeladapter.sandbox.live import BOLD, LogTail, Screen, waiting_text
from modeladapter.sandbox.runtimes import SECRET_NAME
from modeladapter.sandbox.session import EngineKind, SandboxOptions, SandboxProblem, SandboxSession, is_running
from modeladapter.store import UnsupportedDatabase
from modeladapter.store.engine import normalize_url, redact_url

USAGE_ERROR: Final = 2
NOT_RUNNING: Final = 1
DEFAULT_TIMEOUT: Final[dict[str, float]] = {"sim": 120.0, "vllm": 600.0}
ENGINES: Final = ("sim", "vllm")
POLL_SECONDS: Final = 0.2
PROG: Final = "modeladapter sandbox"
DEFAULT_GATEWAY: Final = ("127.0.0.1", 8888)


class UsageError(ValueError):
    """A flag's value the sandbox cannot run with; the message names the flag."""


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    """The checked flags."""

    options: SandboxOptions
    manifests: tuple[Manifest, ...] | None
    """None: the sample adapter."""
    exit_when_running: bool
    timeout: float
    chaos: ChaosPlan | None


def request_from(args: argparse.Namespace, environ: Mapping[str, str]) -> SandboxRequest:
    """The request from parsed flags; UsageError or ManifestProblem for anything that cannot run."""
    first_pod_ip = _first_pod_ip(args.first_pod_ip)
    pods = _pods(args.pods, first_pod_ip)
    engine = str(args.engine or "sim")
    if engine not in ENGINES:
        raise UsageError(f"--engine: must be sim or vllm, got {engine!r}")
    engine_kind: EngineKind = "vllm" if engine == "vllm" else "sim"
    state_dir = Path(args.state_dir or ".modeladapter").expanduser()
    database_url = args.database_url or environ.get("MODELADAPTER_DATABASE_URL") or None
    if database_url is not None:
        try:
            normalize_url(database_url)
        except UnsupportedDatabase as error:
            detail = (
                str(error)
                if "unsupported database" in str(error)
                else f"not a database URL ({redact_url(database_url)})"
            )
            raise UsageError(f"--database-url: {detail}") from None
    if args.timeout is not None and not args.exit_when_running:
        raise UsageError("--timeout: only applies with --exit-when-running")
    timeout = DEFAULT_TIMEOUT[engine] if args.timeout is None else _duration("--timeout", args.timeout)
    if args.seed is not None and not args.chaos:
        raise UsageError("--seed: only applies with --chaos")
    if args.chaos and engine_kind == "vllm":
        raise UsageError("--chaos: needs --engine sim (faults are injected into the simulated engines)")
    seed = _seed(args.seed) if args.seed is not None else secrets.randbelow(10_000)
    plan = ChaosPlan.from_seed(seed, pods) if args.chaos else None
    manifests = tuple(read_manifests(args.filename)) if args.filename else None
    options = SandboxOptions(
        pods=pods,
        engine=engine_kind,
        state_dir=state_dir,
        database_url=database_url,
        first_pod_ip=first_pod_ip,
        gateway=_gateway(args.gateway),
        runtime=_runtime(args.runtime),
    )
    return SandboxRequest(options, manifests, bool(args.exit_when_running), timeout, plan)


def _runtime(text: object) -> bool:
    value = "none" if text is None else str(text).strip()
    if value not in ("none", "aibrix"):
        raise UsageError(f"--runtime: must be aibrix or none, got {value!r}")
    return value == "aibrix"


def _gateway(text: object) -> tuple[str, int] | None:
    if text is None:
        return DEFAULT_GATEWAY
    value = str(text).strip()
    if value == "off":
        return None
    host, colon, port = value.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
        number = int(port)
    except ValueError:
        raise UsageError(f"--gateway: expected HOST:PORT (an IPv4 address and a port, e.g. 127.0.0.1:8888) or off, "
                         f"got {value!r}") from None  # fmt: skip
    if not colon or not 0 < number < 65536:
        raise UsageError(f"--gateway: the port must be from 1 to 65535, got {port!r}")
    return str(address), number


def _first_pod_ip(text: object) -> str:
    if text is None:
        return FIRST_POD_IP
    try:
        address = ipaddress.IPv4Address(str(text).strip())
    except ValueError:
        raise UsageError(f"--first-pod-ip: expected an IPv4 address such as 127.0.1.2, got {text!r}") from None
    if not ipaddress.IPv4Address(FIRST_POD_IP) <= address <= ipaddress.IPv4Address(LAST_POD_IP):
        raise UsageError(
            f"--first-pod-ip: must be a loopback address from {FIRST_POD_IP} to {LAST_POD_IP} (the sandbox serves "
            f"on loopback only, and 127.0.0.1 is left to its API server), got {text!r}"
        )
    return str(address)


def _pods(text: object, first_pod_ip: str = FIRST_POD_IP) -> int:
    if text is None:
        return 3
    try:
        pods = int(str(text).strip())
    except ValueError:
        raise UsageError(f"--pods: expected a whole number, got {text!r}") from None
    if pods < 1:
        raise UsageError(f"--pods: must be at least 1, got {pods}")
    room = max_pods(first_pod_ip)
    if pods > room:
        raise UsageError(f"--pods: at most {room} pods fit on loopback ({first_pod_ip} to {LAST_POD_IP}), got {pods}")
    return pods


def _duration(flag: str, text: str) -> float:
    try:
        seconds = parse_seconds(text)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None
    if seconds <= 0:
        raise UsageError(f"{flag}: must be longer than 0 seconds, got {text!r}")
    return seconds


def _seed(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"--seed: expected a whole number, got {text!r}") from None


def run_sandbox(args: argparse.Namespace, *, environ: Mapping[str, str] = os.environ,
                out: TextIO | None = None, err: TextIO | None = None) -> int:  # fmt: skip
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        request = request_from(args, environ)
        if request.options.engine == "vllm" and (problem := Lane().problem()) is not None:
            raise UsageError(problem)
        if request.options.runtime and (problem := RuntimeLane().problem()) is not None:
            raise UsageError(f"--runtime aibrix: {problem}")
    except (UsageError, ManifestProblem) as error:
        print(f"{PROG}: {error}", file=err)
        return USAGE_ERROR
    state_dir = request.options.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        log_file = (state_dir / "operator.log").open("a")
    except OSError as error:
        reason = "a file of that name is in the way" if isinstance(error, FileExistsError) else error.strerror
        print(f"{PROG}: cannot use the state directory {state_dir}: {reason or error}", file=err)
        return USAGE_ERROR
    handlers = _log_to(log_file, err)
    try:
        return asyncio.run(_serve(request, Screen(out), err))
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
    finally:
        root = logging.getLogger()
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        log_file.close()


def _log_to(log_file: TextIO, err: TextIO) -> list[logging.Handler]:
    """The operator's log to the file (INFO) and its errors to stderr too."""
    to_file = configure_logging(level="INFO", fmt="text", stream=log_file)
    to_err = make_handler(fmt="text", stream=err)
    to_err.setLevel(logging.ERROR)
    logging.getLogger().addHandler(to_err)
    log_file.write(f"--- modeladapter sandbox starting at {datetime.now(UTC).isoformat()} (pid {os.getpid()})\n")
    log_file.flush()
    return [to_file, to_err]


async def _serve(request: SandboxRequest, screen: Screen, err: TextIO) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    session = SandboxSession(request.options, say=screen.print)
    engine = "real vLLM servers" if request.options.engine == "vllm" else "simulated vLLM engines"
    screen.print(f"modeladapter sandbox: starting the API emulator, {request.options.pods} pod(s) with {engine}, "
                 "the operator and the event log, on loopback only")  # fmt: skip
    entering = asyncio.create_task(session.__aenter__(), name="sandbox-start")
    stopping = asyncio.create_task(stop.wait(), name="sandbox-stop")
    try:
        await asyncio.wait({entering, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not entering.done():
            entering.cancel()
            await asyncio.gather(entering, return_exceptions=True)
            screen.print("interrupted while starting; everything started so far is stopped")
            return 0
        try:
            entering.result()
        except SandboxProblem as problem:
            print(f"{PROG}: {problem}", file=err)
            return USAGE_ERROR
        try:
            return await _run(session, request, screen, err, stop)
        finally:
            screen.clear_status()
            await session.aclose()
    finally:
        stopping.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _banner(session: SandboxSession, request: SandboxRequest, screen: Screen) -> None:
    options = session.options
    assert session.server is not None
    kubeconfig = options.kubeconfig_path
    screen.print(f"  API server  {session.server.url}  (Kubernetes API emulator, kubectl 1.20 compatible)")
    for number, pod in enumerate(session.pods):
        label = "pods" if number == 0 else ""
        screen.print(f"  {label:<10}  {pod.name}  {pod.ip}:8000  ({session.engine_kind()})")
    metrics = f"; metrics {session.metrics_url}" if session.metrics_url else ""
    screen.print(f"  operator    in-process, leader election on (Lease {session.lease}); backoff {options.backoff_base:g} s "
                 f"doubling (5 s in production), pods stable for {options.stability_window:g} s{metrics}")  # fmt: skip
    if session.sidecars is not None and session.sidecars.store is not None:
        screen.print(f"  runtime     AIBrix runtime 0.8.0 beside each engine (port 8080); S3 store (moto) "
                     f"{session.sidecars.store.endpoint}; the sample is {session.sidecars.sample_url}")  # fmt: skip
    if session.gateway is not None:
        screen.print(f"  gateway     {session.gateway.url}  (Envoy 1.40: routes /v1/* by the request's model to the "
                     f"adapter's EndpointSlice; log {session.gateway.log_path})")  # fmt: skip
    screen.print(f"  event log   {redact_url(options.event_log_url)}  (append-only; earlier runs are kept)")
    screen.print(f"  kubeconfig  {kubeconfig}")
    screen.print(f"  logs        {options.state_dir / 'operator.log'}  (the operator's own log)")
    screen.print(f"  try         kubectl --kubeconfig {kubeconfig} get modeladapters")
    if request.chaos is not None:
        screen.print(
            f"  {request.chaos.describe()}; rerun with --chaos --seed {request.chaos.seed} for the same faults"
        )
    screen.print("")


async def _run(session: SandboxSession, request: SandboxRequest, screen: Screen, err: TextIO,
               stop: asyncio.Event) -> int:  # fmt: skip
    assert session.store is not None and session.operator_task is not None
    _banner(session, request, screen)
    manifests = list(request.manifests) if request.manifests is not None else [_sample(session)]
    refs = list(dict.fromkeys(ref(m) for m in manifests))
    chaos: Chaos | None = None
    chaos_task: asyncio.Task[None] | None = None
    if request.chaos is not None:
        chaos, chaos_task = start_chaos(session, request.chaos, refs, screen.print)
    try:
        for manifest in manifests:
            where = ref(manifest)
            try:
                await session.apply(manifest)
            except KubeError as error:
                print(f"{PROG}: the API server rejected {where}: {error.message or error}", file=err)
                return USAGE_ERROR
            source = "the seed documentation's sample adapter" if request.manifests is None else "from -f"
            screen.print(f"applied ModelAdapter {where} ({source})")
        tail = LogTail(session.store, screen, after_position=session.start_position)
        return await _follow(session, request, refs, tail, chaos, screen, err, stop)
    finally:
        if chaos_task is not None:
            chaos_task.cancel()
            await asyncio.gather(chaos_task, return_exceptions=True)


def _sample(session: SandboxSession) -> Manifest:
    if session.sidecars is not None:
        return sample_adapter(artifact_url=session.sidecars.sample_url, credentials_secret=SECRET_NAME)
    if session.lane is not None:
        # vLLM here is offline: the sample points at one of the lane's own PEFT adapters instead of the Hub.
        return sample_adapter(artifact_url=str(session.lane.adapter("lora-a")))
    return sample_adapter()


async def _follow(session: SandboxSession, request: SandboxRequest, refs: Sequence[AdapterRef], tail: LogTail,
                  chaos: Chaos | None, screen: Screen, err: TextIO, stop: asyncio.Event) -> int:  # fmt: skip
    assert session.operator_task is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    announced = False
    while True:
        # The status first, then the log: the operator appends before it writes a status, so a status read here
        # has its events in the log by the time of the poll, and a Running adapter has its whole timeline shown.
        adapters = {where: await session.adapter(where) for where in refs}
        await tail.poll()
        running = {where for where, found in adapters.items() if is_running(found)}
        settled = len(running) == len(refs) and (chaos is None or chaos.done.is_set())
        # The hints offer a curl through the gateway: only once Envoy itself routes every instance.
        settled = settled and await _routed(session, adapters)
        also = chaos.stage if chaos is not None and not chaos.done.is_set() and len(running) == len(refs) else None
        screen.status(waiting_text({w: tail.states.get(w) for w in refs}, datetime.now(UTC),
                                   running=running.__contains__, also=also, elapsed=loop.time() - started))  # fmt: skip
        if settled and request.exit_when_running:
            screen.clear_status()
            _summary(tail, refs, screen, loop.time() - started)
            return 0
        if settled and not announced:
            announced = True
            _hints(session, refs, screen)
        if stop.is_set():
            screen.clear_status()
            screen.print(f"stopping; the event log {redact_url(session.options.event_log_url)} keeps every event")
            return 0
        if session.operator_task.done():
            screen.clear_status()
            problem = session.operator_task.exception() if not session.operator_task.cancelled() else None
            print(f"{PROG}: the operator stopped unexpectedly ({problem or session.operator_task.result()}); "
                  f"see {session.options.state_dir / 'operator.log'}", file=err)  # fmt: skip
            return NOT_RUNNING
        if request.exit_when_running and loop.time() - started > request.timeout:
            screen.clear_status()
            await _stuck_report(session, refs, adapters, running, request.timeout, screen)
            return NOT_RUNNING
        try:
            async with asyncio.timeout(POLL_SECONDS):
                await stop.wait()
        except TimeoutError:
            pass


async def _routed(session: SandboxSession, adapters: Mapping[AdapterRef, Any]) -> bool:
    """Envoy holds exactly the instances of every adapter (trivially true without a gateway)."""
    if session.gateway is None:
        return True
    for where, found in adapters.items():
        instances = ((found or {}).get("status") or {}).get("instances") or []
        if len(await session.gateway.envoy_endpoints(where.name) or ()) != len(instances):
            return False
    return True


def _summary(tail: LogTail, refs: Sequence[AdapterRef], screen: Screen, seconds: float) -> None:
    counts = tail.counts
    screen.print(
        f"all {len(refs)} adapter(s) Running {seconds:.1f} s after they were applied "
        f"({counts.get('LoadFailed', 0)} failed load(s) retried, {counts.get('PodLost', 0)} pod(s) lost, "
        f"{counts.get('PodSwitched', 0)} pod switch(es))",
        style=BOLD,
    )


def _hints(session: SandboxSession, refs: Sequence[AdapterRef], screen: Screen) -> None:
    kubeconfig = session.options.kubeconfig_path
    first = refs[0]
    ip = session.pods[0].ip if session.pods else "127.0.0.2"
    screen.print("")
    screen.print(f"all {len(refs)} adapter(s) Running. Meanwhile, in another terminal:", style=BOLD)
    screen.print(f"  kubectl --kubeconfig {kubeconfig} get modeladapters")
    screen.print(f"  kubectl --kubeconfig {kubeconfig} describe modeladapter {first.name} -n {first.namespace}")
    request = f'-H \'Content-Type: application/json\' -d \'{{"model": "{first.name}", "prompt": "def fib(n):", "max_tokens": 16}}\''
    if session.gateway is not None:
        screen.print(f"  curl -s {session.gateway.url}/v1/completions {request}")
        screen.print(f"  curl -s {session.gateway.url}/v1/models   (what the gateway routes)")
    else:
        screen.print(f"  curl -s http://{ip}:8000/v1/completions {request}")
        screen.print(f"  curl -s http://{ip}:8000/v1/models")
    screen.print("Ctrl-C stops the sandbox; the event log keeps everything.")
    screen.print("")


async def _stuck_report(session: SandboxSession, refs: Sequence[AdapterRef], adapters: Mapping[AdapterRef, Any],
                        running: set[AdapterRef], timeout: float, screen: Screen) -> None:  # fmt: skip
    assert session.store is not None
    stuck = [where for where in refs if where not in running]
    screen.print(f"timed out after {timeout:g} s: {len(stuck)} of {len(refs)} adapter(s) not Running", style=BOLD)
    now = datetime.now(UTC)
    for where in stuck:
        found = adapters.get(where) or {}
        status = found.get("status") or {}
        phase = status.get("phase") or "(no phase yet)"
        uid = (found.get("metadata") or {}).get("uid")
        events = await session.store.read(uid) if uid else []
        since = fold(events).phase_since if events else None
        when = f" since {clock(since)} ({(now - since).total_seconds():.1f} s)" if since is not None else ""
        ready = f"{status.get('readyReplicas', 0)}/{status.get('desiredReplicas', 0)} ready"
        screen.print(f"{where}: stuck in {phase}{when}, {ready}")
        for condition in status.get("conditions") or []:
            screen.print(
                f"  condition {condition.get('type')}={condition.get('status')} {condition.get('reason')}: "
                f"{condition.get('message')}"
            )
        screen.print(f"  last error: {_last_error(events) or 'none recorded'}")


def _last_error(events: Sequence[Any]) -> str | None:
    for event in reversed(events):
        payload = event.payload
        if isinstance(payload, LoadFailed):
            return f"load attempt {payload.attempt} on {payload.pod}: {payload.error}"
        if isinstance(payload, UnloadFailed):
            return f"unload from {payload.pod}: {payload.error}"
        if isinstance(payload, SpecRejected):
            return f"spec rejected: {payload.field}: {payload.message}"
    return None
