"""mailhost.offload: a pool trip keeps loop.run_in_executor's semantics."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading

import pytest

from mailhost.offload import BlockingPool, run_blocking

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_result_error_and_context() -> None:
    pool = BlockingPool("t-basic", max_workers=2)
    try:
        assert await pool.run(lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0)
        VAR.set("caller")
        assert await pool.run(VAR.get) == "caller"
        name = await pool.run(lambda: threading.current_thread().name)
        assert name.startswith("mailhost-t-basic_")
        assert await run_blocking(os.getpid) == os.getpid()
    finally:
        pool.shutdown()


async def test_bounded() -> None:
    pool = BlockingPool("t-bound", max_workers=2)
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Event()

    def job() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait(5)
        with lock:
            running -= 1
        return threading.current_thread().name

    try:
        tasks = [asyncio.ensure_future(pool.run(job)) for _ in range(6)]
        await asyncio.sleep(0.1)
        gate.set()
        names = await asyncio.gather(*tasks)
        assert most == 2
        assert len(set(names)) == 2
    finally:
        pool.shutdown()


async def test_cancelled_before_start_never_runs() -> None:
    pool = BlockingPool("t-cancel", max_workers=1)
    gate = threading.Event()
    ran: list[str] = []
    try:
        first = asyncio.ensure_future(pool.run(gate.wait, 5))
        second = asyncio.ensure_future(pool.run(ran.append, "second"))
        await asyncio.sleep(0.05)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        gate.set()
        assert await first is True
        assert await pool.run(ran.append, "third") is None
        assert ran == ["third"]
    finally:
        pool.shutdown()


async def test_cancelled_while_running_finishes() -> None:
    pool = BlockingPool("t-running", max_workers=1)
    started = threading.Event()
    gate = threading.Event()
    done: list[bool] = []

    def job() -> None:
        started.set()
        gate.wait(5)
        done.append(True)

    try:
        task = asyncio.ensure_future(pool.run(job))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.01)
        gate.set()
        await pool.run(lambda: None)  # the same thread: the first job ended
        assert done == [True]
    finally:
        pool.shutdown()


async def test_shutdown_cancels_queued_jobs() -> None:
    pool = BlockingPool("t-shutdown", max_workers=1)
    gate = threading.Event()
    ran: list[int] = []
    first = asyncio.ensure_future(pool.run(gate.wait, 5))
    queued = asyncio.ensure_future(pool.run(ran.append, 1))
    await asyncio.sleep(0.05)
    pool.shutdown()
    gate.set()
    assert await first is True
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert ran == []
    try:
        assert await pool.run(lambda: 7) == 7  # new threads after a shutdown
    finally:
        pool.shutdown()


def test_forked_child_has_its_own_threads() -> None:
    pool = BlockingPool("t-fork", max_workers=2)

    async def trip() -> int:
        return await pool.run(os.getpid)

    assert asyncio.run(trip()) == os.getpid()
    pid = os.fork()  # the pool's threads are running: the child must make its own
    if pid == 0:
        try:
            os._exit(0 if asyncio.run(asyncio.wait_for(trip(), 5)) == os.getpid() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    pool.shutdown()
    assert os.waitstatus_to_exitcode(status) == 0
