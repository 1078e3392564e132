"""``postqueue -f`` / ``-i``: the trigger socket ``public/qmgr`` between the
command and the queue manager of a running server, in process and end to end
with ``mailhost serve``; and Postfix's texts when no server runs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from mailhost.qmgr.trigger import (
    FLUSH,
    FLUSH_ID,
    FLUSH_SITE,
    Request,
    RequestError,
    TriggerServer,
    parse_request,
    send_request,
    site_queue_ids,
    trigger_path,
    valid_site,
)
from mailhost.queue.status import Schedule
from tests.qmgr.helpers import Site
from tests.queuetools.builder import recorded
from tests.support.server import ServerProcess, free_port

REC = recorded()
# A mailbox path outside virtual_mailbox_base: every attempt defers (4.3.5).
DEFERS = "evil@example.com"


def attempts(site: Site, qid: str) -> int:
    return sum(1 for r in site.read(qid).records if isinstance(r, Schedule))


async def test_flush_delivers_deferred_mail_now(tmp_path: Path) -> None:
    site = Site(tmp_path)
    first = await site.enqueue(DEFERS)
    second = await site.enqueue(DEFERS)
    manager = site.manager()
    await manager.run_once()
    assert (site.queue_of(first), attempts(site, first)) == ("deferred", 1)
    # Not due for 100 s: an ordinary deferred scan leaves them alone.
    assert await manager.run_once(deferred=True) == []

    async def handler(request: Request) -> int:
        started = await manager.flush(None if request.kind == FLUSH else [request.argument])
        return len(started)

    server = TriggerServer(site.queue_dir, handler)
    await server.start()
    try:
        answer = await asyncio.to_thread(send_request, site.queue_dir, Request(FLUSH_ID, first))
        assert answer == "ok 1"
        await manager.drain()
        assert (attempts(site, first), attempts(site, second)) == (2, 1)
        answer = await asyncio.to_thread(send_request, site.queue_dir, Request(FLUSH))
        assert answer == "ok 2"
        await manager.drain()
        assert (attempts(site, first), attempts(site, second)) == (3, 2)
        unknown = Request(FLUSH_ID, "NOSUCHID")
        assert await asyncio.to_thread(send_request, site.queue_dir, unknown) == "ok 0"
    finally:
        await server.close()
    assert not trigger_path(site.queue_dir).exists()


def postqueue(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailhost", "postqueue", "-c", str(config_dir), *args],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_postqueue_flush_reaches_a_running_server(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="fast_flush_domains = example.com\n")
    qid = asyncio.run(site.enqueue(DEFERS))
    port = free_port()
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\nqmgr unix n - n 300 1 qmgr\n"
    )
    server = ServerProcess(tmp_path, {"mx": port}, trustme.CA(), tmp_path / "maillog")
    server.queue_kind = "cli"
    server.start()
    try:
        server.wait_log(f"{qid}: to=<{DEFERS}>", count=1)
        done = postqueue(tmp_path, "-f")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        server.wait_log(f"{qid}: to=<{DEFERS}>", count=2)
        done = postqueue(tmp_path, "-i", qid)
        assert done.returncode == 0
        server.wait_log(f"{qid}: to=<{DEFERS}>", count=3)
        done = postqueue(tmp_path, "-s", "example.com")
        assert (done.returncode, done.stderr) == (0, "")
        server.wait_log(f"{qid}: to=<{DEFERS}>", count=4)
    finally:
        assert server.stop() == 0
    # A clean stop removes the socket: Postfix's words for "no qmgr".
    down = postqueue(tmp_path, "-f")
    assert down.returncode == 69
    assert down.stderr == (
        "postqueue: warning: unable to look up public/qmgr: No such file or directory\n"
        + REC["down"]["flush"]["stderr"]
    )


def test_postqueue_flush_with_a_stale_socket_matches_postfix(tmp_path: Path) -> None:
    site = Site(tmp_path)
    path = trigger_path(site.queue_dir)
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # bound, never listening: connections are refused
        done = postqueue(tmp_path, "-f")
    expected = REC["down"]["flush"]
    assert (done.returncode, done.stderr) == (expected["rc"], expected["stderr"])


def test_postqueue_usage_and_bad_id_match_postfix(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.store()
    bad = next(c for c in REC["postqueue_misc"] if c["argv"] == ["postqueue", "-i", "bad/id"])
    done = postqueue(tmp_path, "-i", "bad/id")
    assert (done.returncode, done.stderr) == (bad["rc"], bad["stderr"])
    usage = postqueue(tmp_path)
    assert usage.returncode == 69
    assert usage.stderr.startswith("postqueue: fatal: usage: postqueue -f | postqueue -i queueid")


@given(st.binary(max_size=300))
def test_any_request_line_parses_or_is_refused(line: bytes) -> None:
    try:
        request = parse_request(line)
    except RequestError:
        return
    assert parse_request(request.encode()) == request


@given(st.from_regex(r"[0-9A-Za-z]{1,100}", fullmatch=True))
def test_flush_id_requests_round_trip(queue_id: str) -> None:
    request = Request(FLUSH_ID, queue_id)
    assert parse_request(request.encode()) == request


@pytest.mark.parametrize("line", [b"flush-id bad/id\n", b"FLUSH\n", b"flush x\n", b"\xff\n"])
def test_bad_requests_are_refused(line: bytes) -> None:
    with pytest.raises(RequestError):
        parse_request(line)


async def test_flush_site_delivers_that_destination_only(tmp_path: Path) -> None:
    # Mail for elsewhere defers too (retry(8) stands in for an unreachable MX).
    site = Site(tmp_path, extra="transport_maps = inline:{elsewhere.test=retry:4.4.1 no route}\n")
    here = await site.enqueue(DEFERS)
    elsewhere = await site.enqueue("x@elsewhere.test")
    manager = site.manager()
    await manager.run_once()
    assert {site.queue_of(here), site.queue_of(elsewhere)} == {"deferred"}
    ids = await site_queue_ids(site.store(), "EXAMPLE.com")
    assert ids == {here}
    await manager.flush(ids)
    await manager.drain()
    assert (attempts(site, here), attempts(site, elsewhere)) == (2, 1)


def test_postqueue_site_checks_match_postfix(tmp_path: Path) -> None:
    Site(tmp_path).store()
    for case in REC["postqueue_misc"]:
        if case["argv"][1] == "-s":
            done = postqueue(tmp_path, *case["argv"][1:])
            assert (done.returncode, done.stderr) == (case["rc"], case["stderr"])


def test_postqueue_site_listed_in_fast_flush_domains_needs_the_server(tmp_path: Path) -> None:
    Site(tmp_path, extra="fast_flush_domains = remote.example\n").store()
    done = postqueue(tmp_path, "-s", "remote.example")
    assert (done.returncode, done.stderr.splitlines()[-1]) == (
        69, "postqueue: fatal: Cannot flush mail queue - mail system is down"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("site", "valid"),
    [("example.com", True), ("[192.0.2.1]", True), ("[IPv6:2001:db8::1]", True),
     ("bad site!", False), ("[300.1.1.1]", False), ("1.2.3.4", False), ("", False),
     ("a..b", False), ("-a.example", False)],
)  # fmt: skip
def test_valid_site(site: str, valid: bool) -> None:
    assert valid_site(site) is valid


@given(st.text(max_size=40))
def test_valid_site_requests_round_trip(text: str) -> None:
    if valid_site(text):
        request = Request(FLUSH_SITE, text)
        assert parse_request(request.encode()) == request


async def test_a_request_made_before_the_queue_manager_serves_waits_for_it(
    tmp_path: Path,
) -> None:
    # With several workers the parent opens public/qmgr before it forks and
    # worker 0 serves it once its queue manager runs: a postqueue -f (or an
    # ETRN) in between waits in the backlog and is answered, where it used
    # to find no socket ("unable to look up public/qmgr").
    import threading

    from mailhost.qmgr.trigger import listen_trigger

    sock = listen_trigger(tmp_path)
    answers: list[str] = []
    client = threading.Thread(
        target=lambda: answers.append(send_request(tmp_path, Request(FLUSH), timeout=10))
    )
    client.start()
    await asyncio.sleep(0.3)
    assert client.is_alive()  # connected, waiting
    assert answers == []

    async def handler(request: Request) -> int:
        return 3

    server = TriggerServer(tmp_path, handler, sock)
    await server.start()
    try:
        await asyncio.to_thread(client.join, 10)
    finally:
        await server.close()
    assert answers == ["ok 3"]
    assert not trigger_path(tmp_path).exists()  # a clean stop removes it
