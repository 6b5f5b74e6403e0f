"""`modeladapter sandbox --chaos`: real faults, so that a newcomer sees retries, a lost pod and the heal.

Nothing is faked: the faults are HTTP answers of the simulated engines (`SimulatedEngine.inject`) and the pod
deletion goes through the API, so the operator meets them exactly as it would meet a sick engine or a dead
node. What happens is decided up front by `ChaosPlan.from_seed(seed, pods)` (pure, so a seed always gives
the same plan) and played by `play_chaos`:

1. before the adapters are applied, one engine (`faulty_pod`) answers its next `failures` load requests
   with a fault (`503 Service Unavailable`, `502 Bad Gateway` or a dropped connection; all retriable): the
   operator records `LoadFailed` with the backoff's retry time and tries again until it loads;
2. once the first adapter is Running, and `delete_after` seconds later, one pod serving it (`victim`, an
   index into its instances) is deleted through the API; its engine stops answering and forgets every
   adapter (the container is gone). The operator records `PodLost` and keeps serving on the other pods;
3. a replacement pod is created at once, at the freed address, as a ReplicaSet would; its engine comes
   back empty after `restart_seconds`, the pod turns Ready then, and after the stability window the
   operator loads the adapter onto it.

The play is over when the replacement pod serves the adapter (or, if the adapter does not want it, when
`settle_seconds` have passed after it became eligible): `--exit-when-running` waits for that too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modeladapter.sandbox.documents import AdapterRef
from modeladapter.sandbox.engine.faults import Fault, Route
from modeladapter.sandbox.session import SandboxSession, is_running

FAULTS: Final[dict[str, Fault]] = {
    "503": Fault(status=503),
    "502": Fault(status=502),
    "drop": Fault(drop=True),
}
"""The engine faults chaos picks from, by name; every one is retriable."""


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    seed: int
    faulty_pod: int
    """Index of the pod (in creation order) whose engine fails its first loads."""
    fault: str
    """A key of `FAULTS`."""
    failures: int
    """How many load requests fail on that engine (fewer than the 5 attempts a pod gets, so it heals)."""
    victim: int
    """Which of the first adapter's instances (sorted by name, modulo their number) is deleted."""
    delete_after: float = 1.0
    """Seconds of Running before the pod is deleted, so that Running is seen first."""
    restart_seconds: float = 1.0
    """Seconds before the replacement pod's engine answers and the pod turns Ready."""
    settle_seconds: float = 30.0

    @classmethod
    def from_seed(cls, seed: int, pods: int) -> ChaosPlan:
        chance = random.Random(seed)
        return cls(
            seed=seed,
            faulty_pod=chance.randrange(pods),
            fault=chance.choice(sorted(FAULTS)),
            failures=chance.choice((2, 3)),
            victim=chance.randrange(pods),
        )

    def describe(self) -> str:
        what = {"503": "503 Service Unavailable", "502": "502 Bad Gateway", "drop": "a dropped connection"}
        return (
            f"chaos (seed {self.seed}): pod {self.faulty_pod + 1}'s engine answers its first {self.failures} load(s) "
            f"with {what[self.fault]}; {self.delete_after:g} s after Running, a pod serving the adapter is "
            "deleted and a replacement pod started"
        )


@dataclass(slots=True)
class Chaos:
    """The state of the play, for `--exit-when-running` and the tests."""

    plan: ChaosPlan
    done: asyncio.Event
    stage: str = "chaos: waiting for the adapter to be Running before deleting a pod"
    """What the play waits for now, for the status line."""
    deleted: str | None = None
    replacement: str | None = None


def start_chaos(session: SandboxSession, plan: ChaosPlan, adapters: Sequence[AdapterRef],
                say: Callable[[str], None]) -> tuple[Chaos, asyncio.Task[None]]:  # fmt: skip
    """Inject the engine faults now (before anything is applied); the pod deletion runs as a task."""
    pod = session.pods[plan.faulty_pod]
    session.engines[pod.ip].inject(FAULTS[plan.fault], route=Route.LOAD, times=plan.failures)
    say(f"chaos: the engine of {pod.name} ({pod.ip}) will fail its next {plan.failures} load(s) ({plan.fault})")
    chaos = Chaos(plan, asyncio.Event())
    task = asyncio.create_task(_play(session, chaos, adapters[0], say), name="sandbox-chaos")
    return chaos, task


async def _play(session: SandboxSession, chaos: Chaos, target: AdapterRef, say: Callable[[str], None]) -> None:
    plan = chaos.plan
    try:
        adapter = await _until(lambda: session.adapter(target), is_running)
        chaos.stage = f"chaos: deleting a pod serving {target.name} in {plan.delete_after:g} s"
        await asyncio.sleep(plan.delete_after)
        adapter = await session.adapter(target) or adapter or {}
        instances = sorted((adapter.get("status") or {}).get("instances") or [])
        serving = [p for p in session.pods if p.name in instances] or list(session.pods)
        victim = serving[plan.victim % len(serving)]
        engine = session.engines[victim.ip]
        say(f"chaos: deleting pod {victim.name} ({victim.ip}), which serves {target}, as when its node dies")
        await session.delete_pod(victim.name)
        chaos.deleted = victim.name
        await engine.refuse_connections()  # the container is gone, and what it had loaded with it
        engine.forget_everything()
        engine.clear_faults()
        replacement = await session.create_pod(victim.ip, ready=False)
        chaos.replacement = replacement.name
        say(f"chaos: replacement pod {replacement.name} created at {victim.ip}; its engine starts")
        chaos.stage = f"chaos: replacement pod {replacement.name} starting"
        await asyncio.sleep(plan.restart_seconds)
        await engine.accept_connections()
        await session.mark_ready(replacement.name)
        say(f"chaos: pod {replacement.name} is Ready (the operator waits out the "
            f"{session.options.stability_window:g} s stability window before using it)")  # fmt: skip
        window = session.options.stability_window + plan.settle_seconds
        chaos.stage = f"chaos: {target.name} to be loaded onto {replacement.name} once it is stable"

        def serves(found: Adapter) -> bool:
            status = (found or {}).get("status")
            return isinstance(status, dict) and replacement.name in (status.get("instances") or [])

        try:
            async with asyncio.timeout(window):
                await _until(lambda: session.adapter(target), serves)
        except TimeoutError:
            say(f"chaos: {target} did not take pod {replacement.name} within {window:g} s")
    finally:
        chaos.stage = ""
        chaos.done.set()


Adapter = dict[str, Any] | None


async def _until(read: Callable[[], Awaitable[Adapter]], check: Callable[[Adapter], bool],
                 interval: float = 0.1) -> Adapter:  # fmt: skip
    """Read until `check` holds; the last thing read."""
    while True:
        found = await read()
        if check(found):
            return found
        await asyncio.sleep(interval)
