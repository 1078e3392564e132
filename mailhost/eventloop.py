"""The event loop ``mailhost serve`` runs on.

uvloop (libuv, in C) when it is importable — a dependency of mailhost on
every platform it builds for (CPython, not Windows; pyproject.toml) — and the
standard library's loop otherwise (PyPy, Windows, an install without it), or
when ``MAILHOST_EVENT_LOOP=asyncio`` is set in the environment.  On
``smtp-source`` load the loop's own work (socket writes, callbacks, executor
wake-ups) is a large part of every message; see docs/benchmarks.md for the
measured difference.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Environment variable naming the loop: ``uvloop`` (default when installed)
#: or ``asyncio``.
ENV = "MAILHOST_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for the standard loop."""
    if os.environ.get(ENV, "uvloop").strip().lower() == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - absent where it does not build
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
