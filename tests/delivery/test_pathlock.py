"""PathLocks: one holder per path at a time, overlapping sets without
deadlock, and no lock kept once nobody holds or waits for it."""

from __future__ import annotations

import asyncio

import pytest

from mailhost.delivery.pathlock import PathLocks


async def test_holders_of_one_path_take_turns_and_the_lock_is_dropped() -> None:
    locks = PathLocks()
    order: list[str] = []

    async def deliver(name: str) -> None:
        async with locks.hold("/m/a"):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(deliver("1"), deliver("2"))
    assert order == ["1 in", "1 out", "2 in", "2 out"]
    assert len(locks) == 0


async def test_overlapping_sets_in_opposite_orders_do_not_deadlock() -> None:
    locks = PathLocks()

    async def both(first: str, second: str) -> None:
        async with locks.hold(first, second, first):  # duplicates are one path
            await asyncio.sleep(0.01)

    async with asyncio.timeout(2):
        await asyncio.gather(both("/m/a", "/m/b"), both("/m/b", "/m/a"))
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks = PathLocks()
    async with locks.hold("/m/a"):
        waiter = asyncio.create_task(locks.hold("/m/a").__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(locks) == 0
