"""Deterministic messages for the crash test: sequence number → envelope and
content, so the parent can check every acknowledged message byte for byte."""

from __future__ import annotations

import random

from mailhost.queue.qfile import Client, Envelope, Recipient


def message(seq: int) -> tuple[Envelope, list[bytes]]:
    rnd = random.Random(seq)
    envelope = Envelope(
        sender=f"sender{seq}@client.test",
        recipients=tuple(
            Recipient(f"rcpt{i}@example.com", f"orig{i}@example.com")
            for i in range(rnd.randint(1, 4))
        ),
        arrival_time=1795879051.0 + seq,
        client=Client("localhost", "127.0.0.1", 40000 + seq % 1000, "client.test", "ESMTP"),
    )
    body_lines = rnd.randint(1, 4000)
    content = [f"Subject: message {seq}".encode(), b""]
    content += [b"%d:%d " % (seq, i) + b"x" * rnd.randint(0, 120) for i in range(body_lines)]
    return envelope, content
