"""The queue manager's trigger: how ``postqueue -f`` and ``postqueue -i ID``
reach the qmgr inside a running ``mailhost serve``.

Postfix's postqueue writes a request to qmgr's FIFO ``public/qmgr`` (flush)
or asks the flush(8) service (one queue id); when nothing listens, the mail
system is down and postqueue says so.  mailhost keeps the name: the queue
manager listens on a unix-domain stream socket ``public/qmgr`` under
``queue_directory`` (directory mode 0710, socket 0660: like Postfix's public
directory, for the mail system and the administrator).  A client connects,
sends one request line, and gets ``ok`` once the manager has started the
work (not when delivery ends).  A socket that refuses connections, or no
socket at all, means no queue manager is running.

Requests (one line, ``\\n``-terminated, at most :data:`MAX_REQUEST` bytes):

* ``flush`` — deliver everything in ``incoming`` and ``deferred`` now,
  whatever the next attempt time (postqueue -f);
* ``flush-id QID`` — the same for one deferred message (postqueue -i);
* ``flush-site SITE`` — the deferred messages with a recipient in domain
  SITE (postqueue -s; the command has checked ``fast_flush_domains``).

Answers: ``ok N`` (N messages started) or ``error TEXT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mailhost.log import daemon_logger, logger
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import DEFERRED
from mailhost.queue.qfile import CorruptQueueFile
from mailhost.queue.store import QueueStore

log = logger("qmgr")
qmgr_log = daemon_logger("qmgr")

#: Relative to queue_directory, as Postfix's qmgr FIFO.
TRIGGER_PATH = Path("public") / "qmgr"
PUBLIC_MODE = 0o710
SOCKET_MODE = 0o660
MAX_REQUEST = 256
CLIENT_TIMEOUT = 30.0

FLUSH = "flush"
FLUSH_ID = "flush-id"
FLUSH_SITE = "flush-site"

# A destination as postqueue -s takes it (Postfix valid_hostname or an
# address literal in brackets).
_HOSTNAME = re.compile(
    r"(?=.{1,255}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


def valid_site(site: str) -> bool:
    """A host name, or an RFC 5321 address literal (``[192.0.2.1]``,
    ``[IPv6:2001:db8::1]``)."""
    if site.startswith("[") and site.endswith("]"):
        literal = site[1:-1]
        if literal[:5].lower() == "ipv6:":
            literal = literal[5:]
            try:
                return isinstance(ipaddress.ip_address(literal), ipaddress.IPv6Address)
            except ValueError:
                return False
        try:
            return isinstance(ipaddress.ip_address(literal), ipaddress.IPv4Address)
        except ValueError:
            return False
    return _HOSTNAME.fullmatch(site) is not None and not site.replace(".", "").isdigit()


class RequestError(ValueError):
    """A request line that does not parse."""


class MailSystemDown(Exception):
    """Nothing listens on the trigger socket.  ``missing``: there is no
    socket at all (Postfix: ``unable to look up public/qmgr``)."""

    def __init__(self, missing: bool, detail: str) -> None:
        super().__init__(detail)
        self.missing = missing


@dataclass(frozen=True)
class Request:
    kind: str
    #: the queue id (flush-id) or the site (flush-site).
    argument: str = ""

    def encode(self) -> bytes:
        text = self.kind if self.kind == FLUSH else f"{self.kind} {self.argument}"
        return text.encode("ascii") + b"\n"


def parse_request(line: bytes) -> Request:
    """A request line (with or without its ``\\n``) → :class:`Request`."""
    if len(line) > MAX_REQUEST:
        raise RequestError("request too long")
    try:
        text = line.decode("ascii").removesuffix("\n")
    except UnicodeDecodeError:
        raise RequestError("request is not ASCII") from None
    words = text.split(" ")
    if words == [FLUSH]:
        return Request(FLUSH)
    if len(words) == 2 and words[0] == FLUSH_ID and is_queue_id(words[1]):
        return Request(FLUSH_ID, words[1])
    if len(words) == 2 and words[0] == FLUSH_SITE and valid_site(words[1]):
        return Request(FLUSH_SITE, words[1])
    raise RequestError(f"invalid request: {text[:60]!r}")


def trigger_path(queue_directory: str | os.PathLike[str]) -> Path:
    return Path(queue_directory) / TRIGGER_PATH


#: sun_path holds 108 bytes; longer paths are reached through the directory.
_SUN_PATH_MAX = 100


@contextlib.contextmanager
def _socket_address(path: Path) -> Iterator[str]:
    """A name for ``path`` that fits in a sockaddr_un: the path itself, or,
    when too long, ``/proc/self/fd/N/qmgr`` through an open descriptor of
    its directory (Linux resolves the link while binding or connecting)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


#: What the server does with a request: the number of messages started.
Handler = Callable[[Request], Awaitable[int]]


def listen_trigger(queue_directory: str | os.PathLike[str]) -> socket.socket:
    """The listening ``public/qmgr`` socket (a stale one removed first).
    With several workers the parent opens it before it forks and worker 0
    serves it (:class:`TriggerServer` with ``sock``): a request made while
    worker 0 is still starting waits in the backlog, as a write to Postfix's
    qmgr FIFO, which master(8) holds open, waits for qmgr."""
    path = trigger_path(queue_directory)
    path.parent.mkdir(mode=PUBLIC_MODE, exist_ok=True)
    # A socket left by a server that died: nobody listens on it any more.
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _socket_address(path) as address:
            sock.bind(address)
        os.chmod(path, SOCKET_MODE)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


class TriggerServer:
    """The listening side, run by the queue manager service; ``sock`` is
    the socket :func:`listen_trigger` opened in the prefork parent (None:
    opened here)."""

    def __init__(
        self,
        queue_directory: str | os.PathLike[str],
        handler: Handler,
        sock: socket.socket | None = None,
    ) -> None:
        self.path = trigger_path(queue_directory)
        self.handler = handler
        self._sock = sock
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            sock = listen_trigger(self.path.parent.parent)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(CLIENT_TIMEOUT):
                line = await reader.readline()
                try:
                    request = parse_request(line)
                except RequestError as exc:
                    qmgr_log.warning("trigger %s: %s", self.path, exc)
                    writer.write(f"error {exc}\n".encode())
                else:
                    started = await self.handler(request)
                    writer.write(f"ok {started}\n".encode())
                await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def send_request(
    queue_directory: str | os.PathLike[str], request: Request, *, timeout: float = CLIENT_TIMEOUT
) -> str:
    """Blocking client (postqueue): the server's answer line; raises
    :class:`MailSystemDown` when no queue manager listens."""
    path = trigger_path(queue_directory)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _socket_address(path) as address:
                sock.connect(address)
        except FileNotFoundError as exc:
            raise MailSystemDown(True, exc.strerror or "No such file or directory") from None
        except OSError as exc:  # ECONNREFUSED: a stale socket, nobody listening
            raise MailSystemDown(False, exc.strerror or str(exc)) from None
        sock.sendall(request.encode())
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(MAX_REQUEST)
            if not chunk:
                break
            answer += chunk
    return answer.decode("ascii", "replace").strip()


async def site_queue_ids(store: QueueStore, site: str) -> set[str]:
    """Deferred messages with a pending recipient in domain ``site`` (what
    Postfix's flush(8) keeps a per-destination list of)."""
    wanted = site.lower()
    found = set()
    for entry in await store.list((DEFERRED,)):
        try:
            qf = await store.read_entry(entry, content=False)
        except (CorruptQueueFile, FileNotFoundError):
            continue
        if any(r.address.rpartition("@")[2].lower() == wanted for _, r, _ in qf.pending()):
            found.add(entry.queue_id)
    return found
