"""channels/board/analytics_share.py: figures computed once per question and reused while
fresh, one computation for concurrent askers, failures never kept; a viewer's loads paced
and a queue beyond the pace refused. Clocks are injected: nothing here waits for time."""

from __future__ import annotations

import asyncio
import gc

import pytest

from channels.board.analytics_share import Pace, Shared


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A computation that counts its runs and can be held until released."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        return self.runs


async def test_figures_are_reused_while_fresh_then_computed_again() -> None:
    clock = Clock()
    shared: Shared[int] = Shared(30, clock=clock, wall=lambda: 5.0)
    compute = Counting()
    first = await shared.get("q", compute)
    assert (first.value, first.at) == (1, 5.0)
    clock.now += 29.9
    assert (await shared.get("q", compute)).value == 1
    assert (await shared.get("other", compute)).value == 2  # another question: its own
    clock.now += 0.2
    assert (await shared.get("q", compute)).value == 3
    assert compute.runs == 3


async def test_concurrent_askers_share_one_computation() -> None:
    shared: Shared[int] = Shared(30, clock=Clock())
    compute = Counting()
    compute.release.clear()
    askers = [asyncio.create_task(shared.get("q", compute)) for _ in range(5)]
    await asyncio.sleep(0)
    compute.release.set()
    assert [f.value for f in await asyncio.gather(*askers)] == [1] * 5
    assert compute.runs == 1


async def test_one_asker_going_away_does_not_cancel_the_others() -> None:
    shared: Shared[int] = Shared(30, clock=Clock())
    compute = Counting()
    compute.release.clear()
    gone = asyncio.create_task(shared.get("q", compute))
    stays = asyncio.create_task(shared.get("q", compute))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    compute.release.set()
    assert (await stays).value == 1
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_failure_reaches_every_asker_and_is_not_kept() -> None:
    shared: Shared[int] = Shared(30, clock=Clock())
    calls = 0

    async def broken() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("database gone")

    results = await asyncio.gather(shared.get("q", broken), shared.get("q", broken),
                                   return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError] and calls == 1
    with pytest.raises(RuntimeError):
        await shared.get("q", broken)
    assert calls == 2  # asked again after the failure: computed again


async def test_a_failure_nobody_waits_for_any_more_is_still_read() -> None:
    # Every asker gone (a closed tab, a shutdown), then the computation fails: asyncio
    # must not log "Task exception was never retrieved" for it.
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        shared: Shared[int] = Shared(30, clock=Clock())
        release = asyncio.Event()

        async def broken() -> int:
            await release.wait()
            raise RuntimeError("database gone")

        asker = asyncio.create_task(shared.get("q", broken))
        await asyncio.sleep(0)
        asker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asker
        release.set()
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        assert reported == []
    finally:
        loop.set_exception_handler(None)


async def test_fresh_zero_never_reuses_and_the_kept_are_bounded() -> None:
    compute = Counting()
    never: Shared[int] = Shared(0, clock=Clock())
    assert [(await never.get("q", compute)).value for _ in range(3)] == [1, 2, 3]
    bounded: Shared[int] = Shared(30, size=2, clock=Clock())
    for key in ("a", "b", "c"):
        await bounded.get(key, compute)
    runs = compute.runs
    await bounded.get("c", compute)
    await bounded.get("b", compute)
    assert compute.runs == runs  # the two newest kept
    await bounded.get("a", compute)
    assert compute.runs == runs + 1  # the oldest was dropped


def test_a_burst_goes_at_once_then_loads_start_a_gap_apart() -> None:
    clock = Clock()
    pace = Pace(2.0, burst=3, waiting=2, clock=clock)
    assert [pace.turn("staff:a") for _ in range(3)] == [0.0] * 3  # three clicks: no wait
    assert pace.turn("staff:b") == 0.0  # each viewer has their own turns
    assert pace.turn("staff:a") == pytest.approx(2.0)  # then each waits for its turn
    assert pace.turn("staff:a") == pytest.approx(4.0)
    assert pace.turn("staff:a") is None  # beyond two waiting: refused
    assert pace.retry_after("staff:a") == 6
    clock.now += 10
    assert pace.turn("staff:a") == 0.0  # long after: a full burst again


def test_a_closed_loop_settles_to_one_load_a_gap() -> None:
    clock = Clock()
    pace = Pace(2.0, burst=3, clock=clock)
    loads = 0
    while clock.now < 1020:
        wait = pace.turn("staff:loop")
        assert wait is not None  # a closed loop never has more than one load waiting
        clock.now += wait + 0.05  # the answer's own time
        loads += 1
    assert loads == 3 + 10  # the burst, then one per 2 s over the 20 s


def test_pace_zero_never_waits() -> None:
    pace = Pace(0, clock=Clock())
    assert [pace.turn("staff:a") for _ in range(10)] == [0.0] * 10


def test_viewers_whose_turn_has_passed_are_forgotten() -> None:
    clock = Clock()
    pace = Pace(1.0, clock=clock)
    for n in range(1100):
        pace.turn(f"staff:{n}")
        clock.now += 0.01
    assert len(pace._due) < 200


async def test_close_ends_a_running_computation_before_the_stores_close() -> None:
    shared: Shared[int] = Shared(30, clock=Clock())
    started, ended = asyncio.Event(), asyncio.Event()

    async def slow() -> int:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()
        return 1

    asker = asyncio.create_task(shared.get("q", slow))
    await started.wait()
    await shared.close()
    assert ended.is_set()
    with pytest.raises(asyncio.CancelledError):
        await asker
    await shared.close()  # nothing running: nothing to do


async def test_a_computation_cancelled_before_it_ran_leaves_nothing_behind() -> None:
    shared: Shared[int] = Shared(30, clock=Clock())
    compute = Counting()
    asker = asyncio.create_task(shared.get("q", compute))
    await asyncio.sleep(0)  # the asker has made the computation's task, not yet run
    await shared.close()
    with pytest.raises(asyncio.CancelledError):
        await asker
    assert compute.runs == 0
    assert (await shared.get("q", compute)).value == 1  # asked again: computed afresh
