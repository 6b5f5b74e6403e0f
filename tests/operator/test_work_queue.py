"""The work queue: each key once, never twice at the same time, timers that fire, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from modeladapter.operator.controller.queueing import ShutDown, WorkQueue


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
