"""The daemon's maillog handler: Postfix-shaped lines, written once per event
loop pass, in the order they were logged, none left behind."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
from unittest import mock

from mailhost.log import DaemonFormatter, MaillogHandler, current_pid, logger
from tests.qmgr.helpers import captured_log


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def make_logger(stream: CountingStream) -> tuple[logging.Logger, MaillogHandler]:
    handler = MaillogHandler(stream)
    handler.setFormatter(DaemonFormatter("smtpd"))
    log = logging.getLogger("test.maillog")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, handler


async def test_lines_of_one_loop_pass_are_one_write_in_order() -> None:
    stream = CountingStream()
    log, _ = make_logger(stream)
    log.info("first")
    log.warning("second")
    log.info("third", extra={"daemon": "qmgr"})
    assert stream.getvalue() == ""  # not before the pass ends
    await asyncio.sleep(0)
    pid = os.getpid()
    assert stream.getvalue() == (
        f"mailhost/smtpd[{pid}]: first\n"
        f"mailhost/smtpd[{pid}]: warning: second\n"
        f"mailhost/qmgr[{pid}]: third\n"
    )
    assert stream.writes == 1


async def test_a_line_from_another_thread_is_written_at_once_after_the_buffered_ones() -> None:
    stream = CountingStream()
    log, _ = make_logger(stream)
    log.info("on the loop")
    thread = threading.Thread(target=log.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()] == [
        "on the loop",
        "from a thread",
    ]


def test_without_a_loop_lines_are_written_at_once_and_flush_empties_the_buffer() -> None:
    stream = CountingStream()
    log, handler = make_logger(stream)
    log.info("no loop")
    assert stream.getvalue().endswith("no loop\n")

    async def buffered() -> None:
        log.info("buffered")
        handler.flush()  # logging.shutdown or a worker's exit
        assert stream.getvalue().endswith("buffered\n")

    asyncio.run(buffered())


def test_current_pid_follows_a_fork() -> None:
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, str(current_pid() == os.getpid()).encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 10) == b"True"


async def test_direct_lines_equal_the_logging_modules_and_yield_to_other_handlers() -> None:
    root = logger()
    saved = (root.handlers[:], root.level, root.propagate)
    stream = CountingStream()
    handler = MaillogHandler(stream)
    handler.setFormatter(DaemonFormatter("smtpd"))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    handler.direct()
    component = logger("test.direct")
    try:
        with mock.patch.object(component, "makeRecord", side_effect=AssertionError("no record")):
            component.info("%s: client=%s", "4ABC", "localhost[127.0.0.1]")
            component.info("4ABC: removed", extra={"daemon": "qmgr"})
        component.warning("slow path %d", 1)
        await asyncio.sleep(0)
        pid = os.getpid()
        assert stream.getvalue() == (
            f"mailhost/smtpd[{pid}]: 4ABC: client=localhost[127.0.0.1]\n"
            f"mailhost/qmgr[{pid}]: 4ABC: removed\n"
            f"mailhost/smtpd[{pid}]: warning: slow path 1\n"
        )
        with captured_log() as capture:  # a second handler: every line the usual way
            component.info("%s: seen by both", "4ABC")
            await asyncio.sleep(0)
        assert capture.lines == ["-: 4ABC: seen by both"]
        assert stream.getvalue().endswith(f"smtpd[{pid}]: 4ABC: seen by both\n")
    finally:
        root.handlers[:], root.level, root.propagate = saved
