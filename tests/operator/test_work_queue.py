"""The work queue: each key once, never twice at the same time, timers that fire, nothing lost; and what it tells
the `workqueue_*` metrics (client-go's bookkeeping), against a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modeladapter.operator.controller.controller_metrics import ControllerRuntimeMetrics
from modeladapter.operator.controller.queueing import RestPolicy, ShutDown, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def next_key(queue: WorkQueue[str], timeout: float = 1.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_a_burst_of_adds_for_one_key_runs_it_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(10):
        queue.add("a")
    queue.add("b")
    assert [await next_key(queue), await next_key(queue)] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_is_never_handed_out_while_it_is_being_processed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await next_key(queue) == "a"
    queue.add("a")
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)
    queue.done("a")
    assert await next_key(queue) == "a", "the add during processing must not be lost"


async def test_a_delayed_key_waits_and_an_immediate_add_overtakes_it() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add("later", after=30)
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)
    clock.now += 31
    queue.add("poke")  # any activity makes waiting workers look at the timers again
    assert {await next_key(queue), await next_key(queue)} == {"later", "poke"}


async def test_the_earliest_of_several_timers_for_one_key_wins() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add("a", after=60)
    queue.add("a", after=5)
    clock.now += 6
    assert await next_key(queue) == "a"
    queue.done("a")
    clock.now += 60
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)


async def test_timers_fire_in_real_time_without_any_other_activity() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a", after=0.05)
    assert await next_key(queue, timeout=1.0) == "a"


async def test_workers_share_keys_and_never_overlap_on_one() -> None:
    queue: WorkQueue[int] = WorkQueue()
    running: set[int] = set()
    overlaps = 0
    handled: list[int] = []

    async def worker() -> None:
        nonlocal overlaps
        while True:
            key = await queue.get()
            overlaps += key in running
            running.add(key)
            await asyncio.sleep(0.001)
            running.discard(key)
            handled.append(key)
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for round_ in range(20):
        for key in range(5):
            queue.add(key)
        await asyncio.sleep(0.002 * (round_ % 3))
    while len(queue) or queue.processing:
        await asyncio.sleep(0.01)
    for task in workers:
        task.cancel()
    assert overlaps == 0
    assert set(handled) == set(range(5))


async def test_shutting_down_releases_waiting_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 1.0)


async def test_the_ready_keys_can_be_reordered_but_not_changed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in "abc":
        queue.add(key)
    queue.reorder_ready(lambda keys: keys.reverse())
    with pytest.raises(ValueError):
        queue.reorder_ready(lambda keys: keys.append("d"))
    assert [await next_key(queue) for _ in range(3)] == ["c", "b", "a"]


@pytest.mark.parametrize("with_timer", [False, True], ids=["no timer", "a timer pending"])
async def test_a_waiting_get_cancelled_as_a_key_arrives_stays_cancelled(with_timer: bool) -> None:
    """A stop cancels the workers while other workers' last `done()` wakes the queue: the cancellation must win,
    or a worker goes back to waiting for leadership and the stop never ends."""
    queue: WorkQueue[str] = WorkQueue()
    if with_timer:
        queue.add("later", after=60.0)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # the getter is waiting now
    queue.add("a")
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await next_key(queue) == "a"  # the key it did not take is still there for the next worker


# --- rests between runs of one key that follow each other closely ------------------------------------------

EVERY_RUN_RESTS = RestPolicy(free_runs=0, first=0.1, longest=0.1, window=1.0)
"""Every quick run rests 100 ms: the rest itself, without the streak."""


async def test_a_key_added_again_as_soon_as_it_is_done_waits_for_its_rest() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock, rest=EVERY_RUN_RESTS)
    queue.add("a")
    assert await next_key(queue) == "a"
    queue.done("a")
    queue.add("a")  # a reconcile asking to run again at once
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)
    clock.now += 0.1
    queue.add("poke")
    assert {await next_key(queue), await next_key(queue)} == {"a", "poke"}


async def test_an_add_during_processing_runs_once_after_the_rest_not_at_once() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock, rest=EVERY_RUN_RESTS)
    queue.add("a")
    assert await next_key(queue) == "a"
    queue.add("a")  # e.g. the watch event of the reconcile's own write
    queue.done("a")
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)
    clock.now += 0.1
    queue.add("poke")
    assert {await next_key(queue), await next_key(queue)} == {"a", "poke"}
    assert len(queue) == 0, "it ran once, and nothing of it is left waiting"


async def test_one_keys_rest_holds_back_no_other_key() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock, rest=EVERY_RUN_RESTS)
    queue.add("a")
    queue.done(await next_key(queue))
    queue.add("a")
    queue.add("b")
    assert await next_key(queue) == "b"


async def test_a_longer_delay_is_kept_and_a_rest_long_over_holds_nothing_back() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock, rest=EVERY_RUN_RESTS)
    queue.add("a")
    queue.done(await next_key(queue))
    queue.add_after("a", 30)
    clock.now += 1
    queue.add("poke")
    assert await next_key(queue) == "poke"
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)
    clock.now += 30
    queue.add("poke-again")
    assert {await next_key(queue), await next_key(queue)} == {"a", "poke-again"}
    queue.done("a")
    clock.now += 5
    queue.add("a")
    assert await next_key(queue) == "a", "its rest ended long ago"


async def run_for(scraped: Scraped, seconds: float, *, key: str = "a") -> int:
    """Step the fake clock 10 ms at a time for `seconds`; each time `key` runs, it asks to run again at once."""
    runs = 0
    for step in range(round(seconds / 0.01)):
        scraped.clock.now += 0.01
        scraped.queue.add(f"tick-{step}-{key}")  # has each step looked at the timers
        while scraped.queue.depth:
            got = await scraped.queue.get()
            scraped.queue.done(got)
            if got == key:
                runs += 1
                scraped.queue.add_after(key, 0)  # Result(requeue_after=0), every time
    return runs


def rests_counted(scraped: Scraped) -> float:
    for family in text_string_to_metric_families(generate_latest(scraped.registry).decode()):
        for sample in family.samples:
            if sample.name == "modeladapter_reconcile_rests_total":
                return sample.value
    raise AssertionError("modeladapter_reconcile_rests_total is not exported")


async def test_a_reconcile_that_always_asks_to_run_again_at_once_slows_to_about_once_a_second() -> None:
    scraped = Scraped(rest=RestPolicy())
    scraped.queue.add("a")
    runs = await run_for(scraped, 20)
    # 9 at once (the first and 8 free), 8 resting 5 ms doubling to 640 ms, then about one a second.
    assert 29 <= runs <= 37, f"{runs} runs in 20 s (2,000 without rests)"
    assert runs - 10 <= rests_counted(scraped) <= runs, "each add held back is counted"


async def test_the_first_quick_runs_start_at_once_and_a_pause_starts_a_new_streak() -> None:
    scraped = Scraped(rest=RestPolicy(free_runs=4, first=0.5, longest=0.5, window=1.0))
    queue = scraped.queue
    queue.add("a")
    for _ in range(5):  # the first run, then 4 free quick runs
        assert await next_key(queue, timeout=0.05) == "a"
        queue.done("a")
        queue.add_after("a", 0)
    with pytest.raises(TimeoutError):
        await next_key(queue, timeout=0.05)
    assert rests_counted(scraped) == 1
    scraped.clock.now += 0.5
    queue.add("poke")
    assert {await next_key(queue), await next_key(queue)} == {"a", "poke"}
    queue.done("a")
    queue.done("poke")
    scraped.clock.now += 1.0  # a pause as long as the window: the streak is over
    queue.add("a")
    assert await next_key(queue, timeout=0.05) == "a"


def test_a_rest_policy_that_cannot_work_is_refused() -> None:
    for bad in (
        {"free_runs": -1},
        {"first": 0.0},
        {"first": 2.0, "longest": 1.0},
        {"longest": 3.0, "window": 2.0},
    ):
        with pytest.raises(ValueError, match="rest policy"):
            RestPolicy(**bad)  # type: ignore[arg-type]


# --- what the queue tells the workqueue_* metrics -----------------------------------------------------------


class Scraped:
    """A work queue on a fake clock, reporting to controller-runtime's metrics on a registry of its own."""

    def __init__(self, *, rest: RestPolicy | None = None) -> None:
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.metrics = ControllerRuntimeMetrics(self.registry)
        self.queue: WorkQueue[str] = WorkQueue(clock=self.clock, observer=self.metrics, rest=rest)
        self.metrics.watch_queue(self.queue)

    def value(self, name: str, **labels: str) -> float:
        wanted = {"name": "modeladapter", "controller": "modeladapter", **labels}
        for family in text_string_to_metric_families(generate_latest(self.registry).decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return sample.value
        raise AssertionError(f"{name}{wanted} is not exported")


async def test_an_add_is_counted_when_a_key_starts_waiting_not_for_each_duplicate() -> None:
    scraped = Scraped()
    for _ in range(5):
        scraped.queue.add("a")
    scraped.queue.add("b", after=30)
    assert scraped.value("workqueue_adds_total") == 1
    assert scraped.value("workqueue_depth") == 1, "a key waiting for its timer is not in the depth"
    scraped.clock.now += 31
    assert {await next_key(scraped.queue), await next_key(scraped.queue)} == {"a", "b"}
    assert scraped.value("workqueue_adds_total") == 2, "the delayed add counts when its timer fires"
    assert scraped.value("workqueue_depth") == 0


async def test_a_key_added_while_it_is_processed_is_one_add_and_in_the_depth_until_handed_out_again() -> None:
    scraped = Scraped()
    scraped.queue.add("a")
    await next_key(scraped.queue)
    scraped.queue.add("a")
    scraped.queue.add("a")
    assert (scraped.value("workqueue_adds_total"), scraped.value("workqueue_depth")) == (2, 1)
    scraped.queue.done("a")
    assert (scraped.value("workqueue_adds_total"), scraped.value("workqueue_depth")) == (2, 1)
    await next_key(scraped.queue)
    assert scraped.value("workqueue_depth") == 0


async def test_the_wait_runs_from_the_first_add_to_the_hand_out_and_the_work_from_there_to_done() -> None:
    scraped = Scraped()
    scraped.queue.add("a")
    scraped.clock.now += 3
    scraped.queue.add("a")  # a duplicate does not restart the wait
    scraped.clock.now += 4
    await next_key(scraped.queue)
    scraped.clock.now += 0.25
    scraped.queue.done("a")
    assert scraped.value("workqueue_queue_duration_seconds_sum") == 7
    assert scraped.value("workqueue_queue_duration_seconds_bucket", le="1.0") == 0
    assert scraped.value("workqueue_queue_duration_seconds_bucket", le="10.0") == 1
    assert scraped.value("workqueue_work_duration_seconds_sum") == 0.25
    assert scraped.value("workqueue_work_duration_seconds_count") == 1


async def test_work_in_flight_is_summed_and_its_oldest_shown_at_each_scrape() -> None:
    scraped = Scraped()
    scraped.queue.add("a")
    scraped.queue.add("b")
    await next_key(scraped.queue)
    scraped.clock.now += 10
    await next_key(scraped.queue)
    scraped.clock.now += 2
    assert scraped.value("workqueue_unfinished_work_seconds") == 12 + 2
    assert scraped.value("workqueue_longest_running_processor_seconds") == 12
    scraped.clock.now += 5
    assert scraped.value("workqueue_longest_running_processor_seconds") == 17, "computed when scraped"
    scraped.queue.done("a")
    scraped.queue.done("b")
    assert scraped.value("workqueue_unfinished_work_seconds") == 0
    assert scraped.value("workqueue_longest_running_processor_seconds") == 0


async def test_every_delayed_add_is_a_retry_even_one_of_no_delay_as_client_gos_add_after_counts_it() -> None:
    scraped = Scraped()
    scraped.queue.add_after("a", 0.5)
    scraped.queue.add_after("a", 2.0)
    scraped.queue.add("b", after=0.5)
    scraped.queue.add_after("c", 0)  # AddAfter counts the retry before it sees the delay is none
    scraped.queue.add("d")
    assert scraped.value("workqueue_retries_total") == 4
    assert scraped.value("workqueue_adds_total") == 2, "c and d are ready at once; a and b wait for their timers"
    assert {await next_key(scraped.queue), await next_key(scraped.queue)} == {"c", "d"}
    scraped.clock.now += 1
    assert {await next_key(scraped.queue), await next_key(scraped.queue)} == {"a", "b"}
    assert scraped.value("workqueue_adds_total") == 4


async def test_a_queue_observed_late_counts_its_waiting_keys_as_added_then_and_their_wait_from_then() -> None:
    clock = FakeClock()
    metrics = ControllerRuntimeMetrics(registry := CollectorRegistry())
    queue: WorkQueue[str] = WorkQueue(clock=clock)  # a standby's: filled by its informers, observed by nobody
    queue.add("a")
    queue.add("b")
    queue.add_after("c", 30)
    clock.now += 600  # ten minutes as a standby
    queue.observe(metrics)  # it leads
    clock.now += 2
    taken = [await next_key(queue), await next_key(queue), await next_key(queue)]
    assert sorted(taken) == ["a", "b", "c"]

    def value(name: str) -> float:
        wanted = {"name": "modeladapter", "controller": "modeladapter"}
        return next(
            sample.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples
            if sample.name == name and sample.labels == wanted
        )

    assert value("workqueue_adds_total") == 3, "a and b when it began to lead, c when its timer fired"
    assert value("workqueue_retries_total") == 0, "c was delayed before anyone watched"
    assert value("workqueue_queue_duration_seconds_count") == 3
    assert value("workqueue_queue_duration_seconds_sum") == 2 + 2 + 0, "waits from the takeover, not the standby's"
    for key in taken:
        queue.done(key)
    queue.observe(None)  # it stops leading
    queue.add_after("a", 0)
    await next_key(queue)
    assert (value("workqueue_adds_total"), value("workqueue_retries_total")) == (3, 0)


def test_the_queue_gauges_read_zero_before_a_queue_is_watched() -> None:
    registry = CollectorRegistry()
    ControllerRuntimeMetrics(registry)
    exported = {
        sample.name: sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name.startswith("workqueue_") and not sample.name.endswith("_created")
    }
    assert {name: exported[name] for name in GAUGES} == dict.fromkeys(GAUGES, 0.0)


GAUGES = ("workqueue_depth", "workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds")
