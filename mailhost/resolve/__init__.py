"""Recipient resolution, exactly as Postfix 3.7 does it (spec sections 3.1-3.5).

:class:`Resolver` is the facade: ``classify`` and ``unlisted_reply`` for
smtpd's restrictions at RCPT TO (:mod:`mailhost.smtpd_check`), ``expand`` /
``expand_all`` for cleanup after DATA and for delivery.  The modules
underneath are pure logic over opened tables: classify (address classes),
keys (the key sequence of an address search), aliases (recursive virtual
alias expansion), replies (every text), trace (what ``mailhost trace``
prints).
"""

from mailhost.resolve.aliases import AliasExpansionError, ExpansionLimits
from mailhost.resolve.classify import AddressClass, Classification
from mailhost.resolve.resolver import Resolution, Resolver, ResolverSettings
from mailhost.resolve.trace import Trace, TraceEvent

__all__ = [
    "AddressClass",
    "AliasExpansionError",
    "Classification",
    "ExpansionLimits",
    "Resolution",
    "Resolver",
    "ResolverSettings",
    "Trace",
    "TraceEvent",
]
