"""Recipient resolution, exactly as Postfix 3.7 does it (spec sections 3.1-3.5).

:class:`Resolver` is the facade: ``check_rcpt`` for smtpd at RCPT TO,
``expand`` / ``expand_all`` for cleanup after DATA and for delivery.  The
modules underneath are pure logic over opened tables: classify (address
classes), keys (the key sequence of an address search), aliases (recursive
virtual alias expansion), restrictions (smtpd_*_restrictions), replies (every
text), trace (what ``mailhost trace`` prints).
"""

from mailhost.resolve.aliases import AliasExpansionError, ExpansionLimits
from mailhost.resolve.classify import AddressClass, Classification
from mailhost.resolve.resolver import RcptVerdict, Resolution, Resolver, ResolverSettings
from mailhost.resolve.restrictions import RestrictionClient
from mailhost.resolve.trace import Trace, TraceEvent

__all__ = [
    "AddressClass",
    "AliasExpansionError",
    "Classification",
    "ExpansionLimits",
    "RcptVerdict",
    "Resolution",
    "Resolver",
    "ResolverSettings",
    "RestrictionClient",
    "Trace",
    "TraceEvent",
]
