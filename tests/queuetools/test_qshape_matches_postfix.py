"""``qshape`` against Postfix 3.7.11's qshape on the recorded queue (ages
spread over every bucket, active, deferred and held mail, force-expired
messages, a parent domain with six subdomains) with the options an
administrator uses: ``-s``, ``-p``, ``-m``, ``-l``, ``-b``, ``-t``, ``-w``.

qshape prints rows of equal count and equal name length in Perl hash order
(random); mailhost sorts those by name.  So the rows are compared as: the
same sequence of (count, name length), and the same lines."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from mailhost.cli.qshape import DEFAULT_QUEUES, collect
from mailhost.queue.shape import ShapeOptions, qshape
from mailhost.queue.store import QueueStore
from tests.queuetools.builder import build_queue, json_records, recorded

REC = recorded()
NOW = REC["qshape_time"][0]
CASES = [c for c in REC["qshape"] if c["argv"][3:] != ["maildrop"]]


def parse_args(argv: list[str]) -> tuple[ShapeOptions, tuple[str, ...]]:
    """qshape's command line (as recorded) → options and queues."""

    @click.command()
    @click.option("-s", "senders", is_flag=True)
    @click.option("-p", "parents", is_flag=True)
    @click.option("-m", "min_subdomains", type=float)
    @click.option("-b", "bucket_count", type=float)
    @click.option("-t", "bucket_time", type=float)
    @click.option("-l", "linear", is_flag=True)
    @click.option("-w", "width", type=float)
    @click.argument("queues", nargs=-1)
    def parse(queues: tuple[str, ...], **kwargs: object) -> tuple[ShapeOptions, tuple[str, ...]]:
        return ShapeOptions.from_args(**kwargs), queues  # type: ignore[arg-type]

    result: tuple[ShapeOptions, tuple[str, ...]] = parse.main(argv, standalone_mode=False)
    return result


def row_key(line: str) -> tuple[int, int]:
    name, total = re.match(r"\s*(\S+)\s+(\d+)", line).groups()  # type: ignore[union-attr]
    return int(total), len(name)


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qshape") / "queue"
    build_queue(root, json_records(REC["json"]["stdout"]))
    return root


@pytest.mark.parametrize("case", CASES, ids=lambda c: " ".join(c["argv"][3:]) or "default")
def test_qshape_matches_postfix(queue: Path, case: dict[str, object]) -> None:
    argv = case["argv"][3:]  # type: ignore[index]
    options, queues = parse_args(argv)
    messages = collect(QueueStore(queue), queues or DEFAULT_QUEUES)
    mine = qshape(messages, NOW, options).splitlines()
    theirs = str(case["stdout"]).splitlines()
    assert mine[:2] == theirs[:2]  # headings and TOTAL
    assert [row_key(line) for line in mine[2:]] == [row_key(line) for line in theirs[2:]]
    assert sorted(mine[2:]) == sorted(theirs[2:])


def test_empty_queue_qshape_matches_postfix() -> None:
    assert qshape([], NOW, ShapeOptions()) == REC["empty"]["qshape"]["stdout"]
