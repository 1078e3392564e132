"""Child process for the crash test: enqueue messages forever and print each
queue id once enqueue() has returned (the moment smtpd would answer 250)."""

from __future__ import annotations

import asyncio
import sys

from mailhost.queue.store import QueueStore
from tests.queue.crash_messages import message


async def main(queue_directory: str, first: int, concurrency: int) -> None:
    store = QueueStore(queue_directory)
    await store.setup()
    counter = iter(range(first, 10**9))

    async def worker() -> None:
        for seq in counter:
            envelope, content = message(seq)
            queue_id = await store.enqueue(envelope, content)
            sys.stdout.write(f"{seq} {queue_id}\n")
            sys.stdout.flush()

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
