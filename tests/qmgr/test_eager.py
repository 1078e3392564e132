"""qmgr/eager.gather_eager answers as asyncio.gather does."""

from __future__ import annotations

import asyncio

import pytest

from mailhost.qmgr.eager import gather_eager


async def now(order: list[str], name: str) -> str:
    order.append(name)
    return name


async def later(order: list[str], name: str, wait: asyncio.Future[None]) -> str:
    order.append(f"{name}-start")
    await wait
    await asyncio.sleep(0)
    order.append(f"{name}-end")
    return name


async def fails(order: list[str], name: str) -> str:
    order.append(name)
    raise ValueError(name)


async def test_results_in_order_and_first_steps_in_order() -> None:
    loop = asyncio.get_running_loop()
    for runner in (gather_eager, lambda coros: asyncio.gather(*coros)):
        order: list[str] = []
        wait: asyncio.Future[None] = loop.create_future()
        loop.call_soon(wait.set_result, None)
        coros = [now(order, "a"), later(order, "b", wait), now(order, "c"), later(order, "d", wait)]
        assert list(await runner(coros)) == ["a", "b", "c", "d"]
        assert order == ["a", "b-start", "c", "d-start", "b-end", "d-end"]


async def test_no_await_without_waiting() -> None:
    order: list[str] = []
    assert await gather_eager([now(order, "a"), now(order, "b")]) == ["a", "b"]
    assert await gather_eager([]) == []


async def test_an_exception_propagates_and_the_others_still_run() -> None:
    loop = asyncio.get_running_loop()
    for runner in (gather_eager, lambda coros: asyncio.gather(*coros)):
        order: list[str] = []
        wait: asyncio.Future[None] = loop.create_future()
        coros = [later(order, "a", wait), fails(order, "b"), now(order, "c")]
        with pytest.raises(ValueError, match="b"):
            await runner(coros)
        wait.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(order) == ["a-end", "a-start", "b", "c"]


async def test_exception_after_waiting() -> None:
    async def late_failure() -> str:
        await asyncio.sleep(0)
        raise KeyError("late")

    order: list[str] = []
    with pytest.raises(KeyError):
        await gather_eager([now(order, "a"), late_failure()])


async def test_cancelled_while_waiting_cancels_the_waiting() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []
    wait: asyncio.Future[None] = loop.create_future()
    task = asyncio.ensure_future(gather_eager([now(order, "a"), later(order, "b", wait)]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait.cancelled()
    assert order == ["a", "b-start"]
