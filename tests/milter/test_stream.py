"""mailhost/milter/stream.py: packets cut wherever the bytes arrive, and
what a read raises at end of file or on a bad length, as the StreamReader
reads it replaced raised."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.milter import wire
from mailhost.milter.stream import MilterStream

PACKETS = st.lists(st.tuples(st.binary(min_size=1, max_size=1), st.binary(max_size=300)))


def fed(stream: MilterStream, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        stream.data_received(data[start:cut])
        start = cut
    stream.data_received(data[start:])


def read_all(stream: MilterStream) -> tuple[list[tuple[bytes, bytes]], BaseException]:
    async def run() -> tuple[list[tuple[bytes, bytes]], BaseException]:
        out = []
        while True:
            try:
                out.append(await stream.read())
            except Exception as exc:  # what ended the reads
                return out, exc

    return asyncio.run(run())


@given(PACKETS, st.lists(st.integers(0, 10_000), max_size=8))
def test_packets_cut_anywhere(packets: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = MilterStream()
    fed(stream, b"".join(wire.packet(c, d) for c, d in packets), cuts)
    stream.eof_received()
    found, end = read_all(stream)
    assert found == packets
    assert isinstance(end, asyncio.IncompleteReadError)
    assert (end.partial, end.expected) == (b"", 4)


@pytest.mark.parametrize(
    ("tail", "partial", "expected"),
    [(b"\0\0", b"\0\0", 4), (b"\0\0\0\x09cab", b"cab", 9)],
)
def test_end_of_file_inside_a_packet(tail: bytes, partial: bytes, expected: int) -> None:
    stream = MilterStream()
    stream.data_received(wire.packet(b"c") + tail)
    stream.eof_received()
    found, end = read_all(stream)
    assert found == [(b"c", b"")]
    assert isinstance(end, asyncio.IncompleteReadError)
    assert (end.partial, end.expected) == (partial, expected)


def test_bad_length_after_the_good_packets() -> None:
    stream = MilterStream()
    stream.data_received(wire.packet(b"c") + b"\0\0\0\0" + wire.packet(b"a"))
    found, end = read_all(stream)
    assert found == [(b"c", b"")]
    assert isinstance(end, wire.MilterProtocolError)
    assert str(end) == "bad packet length: 0"


def test_connection_error_comes_first() -> None:
    stream = MilterStream()
    stream.data_received(wire.packet(b"c"))
    stream.connection_lost(ConnectionResetError())
    found, end = read_all(stream)
    assert found == []
    assert isinstance(end, ConnectionResetError)


def test_a_filter_sending_more_than_is_read_waits_on_its_socket() -> None:
    # A real socket pair: the "filter" end writes 8 MiB of packets nobody
    # asked for.  The client stops reading past READ_LIMIT (so the filter's
    # writes block on a full socket) and reads on as packets are taken;
    # every packet arrives, in order.
    import socket
    import threading

    from mailhost.milter.stream import READ_LIMIT

    count, size = 128, 65536
    packets = [(b"b", bytes([n % 256]) * size) for n in range(count)]

    async def run() -> tuple[int, int, list[tuple[bytes, bytes]]]:
        ours, theirs = socket.socketpair()
        sent = [0]

        def filter_writes() -> None:
            with theirs:
                for command, data in packets:
                    theirs.sendall(wire.packet(command, data))
                    sent[0] += 1

        writer = threading.Thread(target=filter_writes)
        loop = asyncio.get_running_loop()
        transport, stream = await loop.connect_accepted_socket(MilterStream, ours)
        writer.start()
        try:
            deadline = loop.time() + 10
            while not stream.read_paused:
                assert loop.time() < deadline, "reading never paused"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the filter fills the socket's buffers
            held, written = stream.queued, sent[0]
            got = [await stream.read() for _ in range(count)]
        finally:
            writer.join(10)
            transport.close()
        return held, written, got

    held, written, got = asyncio.run(run())
    assert got == packets
    assert READ_LIMIT < held <= READ_LIMIT + 512 * 1024  # what one read() adds at most
    assert written < count  # the filter was made to wait
