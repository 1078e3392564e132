"""How ``mailhost serve`` reaches the recipient resolver and the durable queue.

smtpd talks to both only through the Protocols of :mod:`mailhost.smtpd.seams`;
this module names the implementations a production server uses.  Both live in
other packages (:mod:`mailhost.resolve`, :mod:`mailhost.queue`); an
installation without them cannot accept mail, and says so instead of
accepting mail it cannot resolve or store.
"""

from __future__ import annotations

import importlib
import importlib.util

from mailhost.errors import ConfigError
from mailhost.smtpd.server import Wiring

#: module providing ``smtpd_wiring() -> Wiring`` for each side, in the order tried.
PROVIDERS = ("mailhost.smtpd.adapters",)
REQUIRED = ("mailhost.resolve", "mailhost.queue")


def default_wiring() -> Wiring:
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            "mailhost serve needs the recipient resolver and the queue; "
            f"not installed: {', '.join(missing)}"
        )
    for name in PROVIDERS:
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            wiring: Wiring = module.smtpd_wiring()
            return wiring
    raise ConfigError("no smtpd wiring for the installed resolver and queue")
