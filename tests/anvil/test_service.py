"""The anvil process's service and the workers' client over real socket
pairs, on one event loop: counts shared by two clients, a closed client's
connections dropped, an unreachable anvil limiting nothing."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from mailhost.anvil.client import RemoteAnvil
from mailhost.anvil.service import serve

IDENT = "smtp:192.0.2.9"


def pairs(count: int) -> tuple[list[socket.socket], list[socket.socket]]:
    made = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(count)]
    return [a for a, _ in made], [b for _, b in made]


async def test_two_workers_share_one_table() -> None:
    workers, anvil_ends = pairs(2)
    service = asyncio.create_task(serve(anvil_ends, lambda: (60, 600.0)))
    one, two = (RemoteAnvil(sock.detach()) for sock in workers)
    assert await one.connect(IDENT) == (1, 1)
    assert await two.connect(IDENT) == (2, 2)
    assert await one.event("auth", IDENT) == 1
    assert await two.event("auth", IDENT) == 2
    assert await two.event("newtls_report", IDENT) == 0
    one.disconnect(IDENT)
    assert await two.connect(IDENT) == (2, 3)
    # A worker that goes away takes its connections with it.
    await two.close()
    await asyncio.sleep(0.2)  # the service sees that socket's end on its own time
    assert await one.connect(IDENT) == (1, 4)
    await one.close()
    await asyncio.wait_for(service, 5)  # every socket closed: the service ends


async def test_unreachable_anvil_limits_nothing(caplog: pytest.LogCaptureFixture) -> None:
    workers, anvil_ends = pairs(1)
    anvil_ends[0].close()
    client = RemoteAnvil(workers[0].detach())
    with caplog.at_level(logging.WARNING):
        assert await client.connect(IDENT) is None
        assert await client.event("message", IDENT) is None
        client.disconnect(IDENT)
    warnings = [r.getMessage() for r in caplog.records if "anvil service" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("problem talking to the anvil service: ")
    await client.close()


async def test_malformed_request_closes_that_worker_only() -> None:
    workers, anvil_ends = pairs(2)
    service = asyncio.create_task(serve(anvil_ends, lambda: (60, 600.0)))
    good = RemoteAnvil(workers[1].detach())
    assert await good.connect(IDENT) == (1, 1)
    reader, writer = await asyncio.open_unix_connection(sock=workers[0])
    writer.write(b"explode now\n")
    assert await reader.read() == b""
    writer.close()
    assert await good.connect(IDENT) == (2, 2)
    await good.close()
    await asyncio.wait_for(service, 5)


async def test_sessions_starting_together_share_one_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # bench/restriction_cost.py found it: 20 sessions starting at once each
    # wrapped the inherited descriptor, and closed it under one another.
    workers, anvil_ends = pairs(1)
    service = asyncio.create_task(serve(anvil_ends, lambda: (60, 600.0)))
    client = RemoteAnvil(workers[0].detach())
    answers = await asyncio.gather(*(client.connect(f"smtp:192.0.2.{i}") for i in range(20)))
    assert answers == [(1, 1)] * 20
    assert "problem talking to the anvil service" not in caplog.text
    await client.close()
    await asyncio.wait_for(service, 5)


def test_service_and_client_on_the_production_loop() -> None:
    # mailhost serve runs both ends on uvloop, whose transports are not
    # asyncio.Transport subclasses; requests that arrive in one read are
    # answered in order.
    from mailhost import eventloop

    async def scenario() -> None:
        workers, anvil_ends = pairs(1)
        service = asyncio.create_task(serve(anvil_ends, lambda: (60, 600.0)))
        client = RemoteAnvil(workers[0].detach())
        assert await client.connect(IDENT) == (1, 1)
        rates = await asyncio.gather(*(client.event("recipient", IDENT) for _ in range(50)))
        assert rates == list(range(1, 51))
        assert await client.event("message", IDENT) == 1
        client.disconnect(IDENT)
        await client.close()
        await asyncio.wait_for(service, 5)

    eventloop.run(scenario())


async def test_a_request_without_its_newline_at_the_end_is_answered() -> None:
    workers, anvil_ends = pairs(2)
    service = asyncio.create_task(serve(anvil_ends, lambda: (60, 600.0)))
    good = RemoteAnvil(workers[1].detach())
    assert await good.connect(IDENT) == (1, 1)
    reader, writer = await asyncio.open_unix_connection(sock=workers[0])
    writer.write(b"auth " + IDENT.encode())
    writer.write_eof()
    assert await reader.read() == b"1\n"
    writer.close()
    assert await good.event("auth", IDENT) == 2
    await good.close()
    await asyncio.wait_for(service, 5)
