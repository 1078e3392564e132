"""``mailhost postsuper`` against Postfix 3.7.11's postsuper: the recorded
sequence of commands replayed on a mailhost queue holding what the Postfix
queue held (same ids), comparing stderr, exit status and the maillog lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mailhost.queue.layout import DEFERRED, HOLD, INCOMING
from mailhost.queue.store import QueueStore
from tests.queuetools.builder import build_queue, json_records, recorded

REC = recorded()


def configure(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "main.cf").write_text(
        f"queue_directory = {tmp_path}/queue\nmaillog_file = {tmp_path}/maillog\n"
        f"maillog_file_prefixes = {tmp_path}\nmyhostname = mx.example.net\n"
    )
    return tmp_path / "etc", tmp_path / "maillog"


def maillog_texts(text: str, program: str) -> list[str]:
    """The text after ``PROGRAM[PID]: `` of each line of that program."""
    return re.findall(rf"^\w+ \d+ [\d:]+ \S+ \S*{program}\[\d+\]: (.*)$", text, flags=re.M)


def test_postsuper_sequence_matches_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    config_dir, maillog = configure(tmp_path)
    build_queue(tmp_path / "queue", json_records(REC["long_json"]["stdout"]))
    for case in REC["postsuper"]:
        stdin = None
        if "-" in case["argv"]:
            stdin = f"{REC['ids'][6]}\n{REC['ids'][7]}\nbad/id\n"
        result = mailhost_cli("postsuper", "-c", str(config_dir), *case["argv"][1:], input=stdin)
        assert (result.exit_code, result.stderr) == (case["rc"], case["stderr"]), case["argv"]
        assert result.stdout == ""
    # The recorder's own set-up commands came first in its maillog.
    lines = sum(case["stderr"].count("\n") for case in REC["postsuper"])
    expected = maillog_texts(REC["maillog"], "postsuper")[-lines:]
    assert maillog_texts(maillog.read_text(), "postsuper") == expected


def test_postsuper_on_empty_queue_matches_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    config_dir, _ = configure(tmp_path)
    QueueStore(tmp_path / "queue").create_directories()
    result = mailhost_cli("postsuper", "-c", str(config_dir), "-h", "ALL")
    case = REC["empty"]["hold_all"]
    assert (result.exit_code, result.stderr) == (case["rc"], case["stderr"])


def test_postsuper_moves(tmp_path: Path, mailhost_cli: Any) -> None:
    config_dir, _ = configure(tmp_path)
    records = json_records(REC["json"]["stdout"])
    store = build_queue(tmp_path / "queue", records)
    deferred = [r["queue_id"] for r in records if r["queue_name"] == DEFERRED]
    mailhost_cli("postsuper", "-c", str(config_dir), "-h", deferred[0])
    assert store.path(HOLD, deferred[0]).exists()
    mailhost_cli("postsuper", "-c", str(config_dir), "-H", deferred[0])
    assert store.path(DEFERRED, deferred[0]).exists()
    mailhost_cli("postsuper", "-c", str(config_dir), "-r", deferred[1])
    assert store.path(INCOMING, deferred[1]).exists()
    result = mailhost_cli("postsuper", "-c", str(config_dir), "-e", deferred[2])
    assert (
        result.stderr == f"postsuper: {deferred[2]}: expired\npostsuper: Force-expired: 1 message\n"
    )
    listing = mailhost_cli("mailq", "-c", str(config_dir)).stdout
    assert f"\n{deferred[2]}#" in listing
    result = mailhost_cli("postsuper", "-c", str(config_dir), "-d", "ALL", "nosuchqueue")
    assert (result.exit_code, result.stderr) == (
        1,
        "postsuper: fatal: invalid directory name: nosuchqueue\n",
    )
    result = mailhost_cli("postsuper", "-c", str(config_dir))
    assert result.exit_code == 1
    assert result.stderr.startswith("postsuper: fatal: usage: postsuper [-c")


def test_maillog_file_outside_prefixes_is_fatal_before_the_queue(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    # Postfix 3.7.11: "postsuper: fatal: maillog_file value '/tmp/x.log' does
    # not match any prefix in maillog_file_prefixes", exit 1; postqueue -p
    # the same with exit 69; mailq (sendmail -bp) with exit 75: before any of
    # them looks at the queue (there is none here).
    (tmp_path / "main.cf").write_text(
        f"queue_directory = {tmp_path}/none\nmaillog_file = {tmp_path}/x.log\n"
    )
    text = (
        f"maillog_file value '{tmp_path}/x.log' does not match any prefix"
        " in maillog_file_prefixes\n"
    )
    for program, argv, status in [
        ("postsuper", ["-d", "ALL"], 1),
        ("postqueue", ["-p"], 69),
        ("mailq", [], 75),
    ]:
        result = mailhost_cli(program, "-c", str(tmp_path), *argv)
        assert (result.exit_code, result.stderr) == (status, f"{program}: fatal: {text}")
    assert not (tmp_path / "x.log").exists()
