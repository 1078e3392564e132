"""``mailhost postcat`` against Postfix 3.7.11's postcat of the same message
(recorded: a held message with three recipients, ``-q``, ``-hq``, ``-bq``,
``-eq``, an unknown id).  The mailhost queue file is built from the recorded
envelope and content; the records mailhost does not keep (create_time,
rewrite_context, reverse_client_name, server_address/port,
client_address_type, the implicit dsn_orig_rcpt) are left out of the
expected text, and the size record's second field (the content offset in
Postfix's own file layout) is compared as mailhost's offset."""

from __future__ import annotations

import calendar
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from mailhost.queue import qfile
from mailhost.queue.dump import Sections, postcat
from mailhost.queue.qfile import Client, Envelope, QueueFile, Recipient
from mailhost.queue.store import QueueStore
from tests.queuetools.builder import recorded

REC = recorded()
FULL = REC["postcat"][0]
NOT_KEPT = re.compile(
    r"^(create_time: |named_attribute: (rewrite_context|reverse_client_name|server_address"
    r"|server_port|client_address_type|dsn_orig_rcpt)=)"
)


def attributes(text: str) -> dict[str, str]:
    return dict(re.findall(r"^named_attribute: (\w+)=(.*)$", text, flags=re.M))


def build(tmp_path: Path) -> tuple[QueueStore, QueueFile]:
    """The recorded message as a mailhost queue file in hold."""
    text = FULL["stdout"]
    attrs = attributes(text)
    qid = attrs["log_ident"]
    arrival = re.search(r"^message_arrival_time: (.*)$", text, flags=re.M).group(1)  # type: ignore[union-attr]
    pairs = re.findall(r"^original_recipient: (.*)\nrecipient: (.*)$", text, flags=re.M)
    content = text.split(f"*** MESSAGE CONTENTS hold/{qid} ***\n")[1]
    content = content.split(f"*** HEADER EXTRACTED hold/{qid} ***\n")[0]
    envelope = Envelope(
        sender=re.search(r"^sender: (.*)$", text, flags=re.M).group(1),  # type: ignore[union-attr]
        recipients=tuple(Recipient(final, orig) for orig, final in pairs),
        arrival_time=calendar.timegm(time.strptime(arrival)),
        client=Client(
            attrs["client_name"], attrs["client_address"], int(attrs["client_port"]),
            attrs["helo_name"], attrs["protocol_name"],
        ),
    )  # fmt: skip
    lines = [line.encode() for line in content.splitlines()]
    store = QueueStore(tmp_path / "queue")
    store.create_directories()
    path = store.path("hold", qid)
    path.write_bytes(qfile.to_bytes(qid, envelope, lines))
    os.chmod(path, 0o700)
    with path.open("rb") as f:
        return store, qfile.read(f)


def expected_text(recorded_text: str, qf: QueueFile) -> str:
    lines = [line for line in recorded_text.splitlines(keepends=True) if not NOT_KEPT.match(line)]
    out = []
    for line in lines:
        if line.startswith("message_size: "):
            fields = line.split()[1:]
            fields[1] = str(qf.content_offset)
            out.append("message_size: " + " ".join(f"{n:>15}" for n in fields) + "\n")
        else:
            out.append(line)
    return "".join(out)


@pytest.mark.parametrize(
    ("index", "sections"),
    [
        (0, Sections()),
        (1, Sections(envelope=False, header=True, body=False)),
        (2, Sections(envelope=False, header=False, body=True)),
        (3, Sections(envelope=True, header=False, body=False)),
    ],
)
def test_postcat_matches_postfix(tmp_path: Path, index: int, sections: Sections) -> None:
    _, qf = build(tmp_path)
    assert qf.size == 453  # the recorded message_size: same content, same count
    mine = postcat(qf, f"hold/{qf.queue_id}", sections, localtime=time.gmtime).decode()
    assert mine == expected_text(REC["postcat"][index]["stdout"], qf)


def test_postcat_command(
    tmp_path: Path, mailhost_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, qf = build(tmp_path)
    (tmp_path / "main.cf").write_text(f"queue_directory = {store.root}\n")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        result = mailhost_cli("postcat", "-c", str(tmp_path), "-q", qf.queue_id)
        assert result.stdout == expected_text(FULL["stdout"], qf)
        by_name = mailhost_cli(
            "postcat", "-c", str(tmp_path), "-h", str(store.path("hold", qf.queue_id))
        )
        assert by_name.stdout == REC["postcat"][1]["stdout"]
    finally:
        monkeypatch.undo()
        time.tzset()
    missing = mailhost_cli("postcat", "-c", str(tmp_path), "-q", "NOSUCHID")
    assert (missing.exit_code, missing.stderr) == (
        REC["postcat"][4]["rc"],
        REC["postcat"][4]["stderr"],
    )
    junk = tmp_path / "junk"
    junk.write_text("not a queue file\n")
    result = mailhost_cli("postcat", str(junk))
    assert (result.exit_code, result.stderr) == (
        0,
        f"postcat: warning: {junk}: input is not a valid queue file\n",
    )
