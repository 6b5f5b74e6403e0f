"""Phase history, time in phase and stuck adapters, answered from the log on both backends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from modeladapter.fsm.events import AdapterEvent, Finalized, LoadFailed, PhaseChanged, stamp
from modeladapter.fsm.phases import Phase
from modeladapter.store import SqlEventStore
from modeladapter.store.queries import phase_history, stuck_adapters, time_in_phase

NS = "default"


def moved(
    from_phase: Phase | None, to_phase: Phase, trigger: str, reason: str = "R", message: str = "M"
) -> PhaseChanged:
    return PhaseChanged(from_phase=from_phase, to_phase=to_phase, trigger=trigger, reason=reason, message=message)


async def write(store: SqlEventStore, name: str, timeline: list[tuple[datetime, AdapterEvent]]) -> str:
    """Append each event at its own time, as successive reconciles would."""
    stream = str(uuid.uuid4())
    for version, (at, payload) in enumerate(timeline):
        await store.append(stream, stamp([payload], at=at), expected_version=version, namespace=NS, name=name)
    return stream


def seconds(epoch: datetime, n: float) -> datetime:
    return epoch + timedelta(seconds=n)


async def test_history_lists_every_transition_with_the_time_spent_in_each_phase(
    store: SqlEventStore, epoch: datetime
) -> None:
    await write(
        store,
        "sql-lora",
        [
            (
                seconds(epoch, 0),
                moved(None, Phase.PENDING, "created", "ModelAdapterPending", "Starting reconciliation"),
            ),
            (seconds(epoch, 1), moved(Phase.PENDING, Phase.SCHEDULED, "pods_selected")),
            (seconds(epoch, 1.5), moved(Phase.SCHEDULED, Phase.LOADING, "load_started")),
            (seconds(epoch, 4), moved(Phase.LOADING, Phase.BOUND, "load_verified")),
            (seconds(epoch, 4.25), moved(Phase.BOUND, Phase.RUNNING, "service_bound")),
        ],
    )
    history = await phase_history(store, namespace=NS, name="sql-lora")
    assert [(t.from_phase, t.to_phase, t.trigger) for t in history] == [
        (None, Phase.PENDING, "created"),
        (Phase.PENDING, Phase.SCHEDULED, "pods_selected"),
        (Phase.SCHEDULED, Phase.LOADING, "load_started"),
        (Phase.LOADING, Phase.BOUND, "load_verified"),
        (Phase.BOUND, Phase.RUNNING, "service_bound"),
    ]
    now = seconds(epoch, 10)
    assert [t.time_in_phase(now).total_seconds() for t in history] == [1, 0.5, 2.5, 0.25, 5.75]
    assert history[0].message == "Starting reconciliation"
    assert history[-1].left_at is None


async def test_history_spans_every_incarnation_of_a_name_and_nothing_else(
    store: SqlEventStore, epoch: datetime
) -> None:
    first = await write(
        store,
        "sql-lora",
        [(seconds(epoch, 0), moved(None, Phase.PENDING, "created")), (seconds(epoch, 2), Finalized())],
    )
    second = await write(store, "sql-lora", [(seconds(epoch, 5), moved(None, Phase.PENDING, "created"))])
    await write(store, "other-lora", [(seconds(epoch, 1), moved(None, Phase.PENDING, "created"))])
    history = await phase_history(store, namespace=NS, name="sql-lora")
    assert [t.stream_id for t in history] == [first, second]
    assert await phase_history(store, namespace="elsewhere", name="sql-lora") == []


async def test_time_in_phase_adds_up_over_retries_and_stops_when_the_adapter_is_deleted(
    store: SqlEventStore, epoch: datetime
) -> None:
    await write(
        store,
        "flaky",
        [
            (seconds(epoch, 0), moved(None, Phase.PENDING, "created")),
            (seconds(epoch, 2), moved(Phase.PENDING, Phase.SCHEDULED, "pods_selected")),
            (seconds(epoch, 3), moved(Phase.SCHEDULED, Phase.LOADING, "load_started")),
            (seconds(epoch, 13), moved(Phase.LOADING, Phase.FAILED, "loading_failed")),
            (seconds(epoch, 43), moved(Phase.FAILED, Phase.PENDING, "retry_due")),
            (seconds(epoch, 44), moved(Phase.PENDING, Phase.TERMINATING, "deletion_requested")),
            (seconds(epoch, 47), Finalized()),
        ],
    )
    totals = await time_in_phase(store, namespace=NS, name="flaky", now=seconds(epoch, 1000))
    assert {phase: delta.total_seconds() for phase, delta in totals.items()} == {
        Phase.PENDING: 3,
        Phase.SCHEDULED: 1,
        Phase.LOADING: 10,
        Phase.FAILED: 30,
        Phase.TERMINATING: 3,
    }


async def test_stuck_adapters_are_the_live_ones_in_one_phase_too_long_with_their_last_error(
    store: SqlEventStore, epoch: datetime
) -> None:
    await write(
        store,
        "stuck-loading",
        [
            (seconds(epoch, 0), moved(None, Phase.PENDING, "created")),
            (seconds(epoch, 1), moved(Phase.PENDING, Phase.SCHEDULED, "pods_selected")),
            (seconds(epoch, 2), moved(Phase.SCHEDULED, Phase.LOADING, "load_started", "Loading", "loading on 1 pod")),
            (
                seconds(epoch, 3),
                LoadFailed(
                    pod="vllm-0", attempt=1, error="connection refused", retriable=True, retry_at=seconds(epoch, 8)
                ),
            ),
        ],
    )
    await write(
        store,
        "long-pending",
        [(seconds(epoch, 0), moved(None, Phase.PENDING, "created", "NoCandidatePods", "no pods"))],
    )
    await write(store, "fresh", [(seconds(epoch, 590), moved(None, Phase.PENDING, "created"))])
    await write(store, "running", [(seconds(epoch, 0), moved(None, Phase.RUNNING, "service_bound"))])
    await write(
        store,
        "deleted",
        [(seconds(epoch, 0), moved(None, Phase.TERMINATING, "deletion_requested")), (seconds(epoch, 1), Finalized())],
    )
    stuck = await stuck_adapters(store, longer_than=timedelta(minutes=5), now=seconds(epoch, 600))
    assert [(s.name, s.phase) for s in stuck] == [("long-pending", Phase.PENDING), ("stuck-loading", Phase.LOADING)]
    loading = stuck[1]
    assert loading.stuck_for == timedelta(seconds=598)
    assert (loading.reason, loading.message) == ("Loading", "loading on 1 pod")
    assert loading.last_error == "LoadFailed: pod vllm-0: connection refused"
    assert stuck[0].last_error is None

    only_running = await stuck_adapters(
        store, longer_than=timedelta(minutes=5), now=seconds(epoch, 600), phases=[Phase.RUNNING]
    )
    assert [s.name for s in only_running] == ["running"]
