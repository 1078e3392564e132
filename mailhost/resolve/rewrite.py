"""cleanup(8)'s address rewriting: what happens to a message's addresses before it is queued.

Once per message, between end of DATA (or pickup of a maildrop file) and the
queue file, in Postfix's order (spec 3.1 step 2, cleanup(8), canonical(5),
ADDRESS_REWRITING_README):

1. canonicalise (trivial-rewrite's ``local`` context): a source route
   ``@a,@b:user@dom`` becomes ``user@dom``; an address without ``@`` gets
   ``host!user`` → ``user@host`` (swap_bangpath), ``user%dom`` → ``user@dom``
   (allow_percent_hack), else ``@$myorigin`` (append_at_myorigin); ``user@host``
   becomes ``user@host.$mydomain`` only with append_dot_mydomain = yes (the
   compatibility level 2+ default is no);
2. ``sender_canonical_maps`` (senders) or ``recipient_canonical_maps``
   (recipients), then ``canonical_maps`` — each only for the address classes of
   its ``*_canonical_classes`` parameter (envelope_sender, envelope_recipient,
   header_sender, header_recipient).  Each map is applied 1:1, again and again
   until the address maps to itself, at most 10 rounds (after which cleanup
   logs ``unreasonable NAME map nesting`` and keeps the last result — the
   message is still queued, as recorded from Postfix 3.7.11); of a
   multi-address value only the first address is used (``multi-valued NAME
   entry``).  Lookups use the key sequence of spec 3.3
   (:func:`mailhost.resolve.keys.map_address`, the same search smtpd's RCPT
   check uses, so "known at RCPT" and "rewritten at queue time" agree); an
   unmatched extension is propagated when propagate_unmatched_extensions
   contains ``canonical``;
3. masquerading (masquerade_domains, masquerade_exceptions, masquerade_classes):
   ``user@host.sub.example.com`` → ``user@example.com``;
4. then — not here — virtual alias expansion of each rewritten recipient
   (:mod:`mailhost.resolve.aliases`).  The address the client gave stays the
   recipient's original address (``orig_to``).

Headers: the addresses of the sender headers (From, Sender, Reply-To, ...,
Resent-From) and recipient headers (To, Cc, ..., Resent-To) of the primary
header section go through steps 1–3 with the header classes
(:mod:`mailhost.resolve.header_addresses`).  A table failure stops the message:
``451 4.3.0 Error: queue file write error`` and cleanup's ``NAME map lookup
problem for ADDR -- message not accepted, try again later`` warning.

Use :func:`cleanup_rewrite`; smtpd (at end of DATA) and pickup call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailhost.address import external_form, internal_form, join_address, split_address
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.reply import Reply
from mailhost.resolve import replies
from mailhost.resolve.header_addresses import HeaderMemo, rewrite_headers
from mailhost.resolve.keys import SearchPolicy, map_address
from mailhost.resolve.networks import NetworkList
from mailhost.resolve.resolver import ResolverSettings, interface_addresses
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("cleanup")

ENVELOPE_SENDER = "envelope_sender"
ENVELOPE_RECIPIENT = "envelope_recipient"
HEADER_SENDER = "header_sender"
HEADER_RECIPIENT = "header_recipient"

#: cleanup's MAX_RECURSION for 1:1 maps (cleanup_map11.c).
MAX_ROUNDS = 10


class RewriteError(Exception):
    """A table failed while rewriting; the message must not be queued."""

    def __init__(self, parameter: str, address: str) -> None:
        self.parameter = parameter
        self.address = address
        super().__init__(self.log_text)

    @property
    def log_text(self) -> str:
        """cleanup's warning, without the ``QID: `` prefix."""
        return (
            f"{self.parameter} map lookup problem for {self.address}"
            " -- message not accepted, try again later"
        )

    @property
    def reply(self) -> Reply:
        return replies.QUEUE_WRITE_ERROR


@dataclass(frozen=True)
class CanonicalMap:
    maps: Maps
    classes: frozenset[str]


@dataclass(frozen=True)
class RewriteSettings:
    """Every parameter cleanup's rewriting reads, read once."""

    search: SearchPolicy
    mydomain: str = ""
    append_dot_mydomain: bool = False
    swap_bangpath: bool = True
    allow_percent_hack: bool = True
    sender_canonical: CanonicalMap | None = None
    recipient_canonical: CanonicalMap | None = None
    canonical: CanonicalMap | None = None
    #: masquerade_domains in order; a leading ``!`` excludes a domain.
    masquerade_domains: tuple[str, ...] = ()
    masquerade_exceptions: frozenset[str] = frozenset()
    masquerade_classes: frozenset[str] = frozenset(
        {ENVELOPE_SENDER, HEADER_SENDER, HEADER_RECIPIENT}
    )
    propagate_canonical: bool = True
    #: local_header_rewrite_clients (None: every client is local).
    header_clients: HeaderClients | None = None
    remote_header_rewrite_domain: str = ""

    @classmethod
    def from_config(
        cls, cfg: Config, registry: TableRegistry, search: SearchPolicy | None = None
    ) -> RewriteSettings:
        """``search`` is the resolver's key policy when the caller has it
        already (read from ``cfg`` otherwise)."""

        def canonical(name: str) -> CanonicalMap | None:
            maps = Maps.from_value(f"{name}_maps", cfg.get(f"{name}_maps"), registry)
            if not maps:
                return None
            return CanonicalMap(maps, _classes(cfg.get(f"{name}_classes")))

        return cls(
            search=search or ResolverSettings.from_config(cfg, registry).search,
            mydomain=cfg.get("mydomain"),
            append_dot_mydomain=cfg.get_bool("append_dot_mydomain"),
            swap_bangpath=cfg.get_bool("swap_bangpath"),
            allow_percent_hack=cfg.get_bool("allow_percent_hack"),
            sender_canonical=canonical("sender_canonical"),
            recipient_canonical=canonical("recipient_canonical"),
            canonical=canonical("canonical"),
            masquerade_domains=tuple(d.lower() for d in split_list(cfg.get("masquerade_domains"))),
            masquerade_exceptions=frozenset(
                name.lower() for name in split_list(cfg.get("masquerade_exceptions"))
            ),
            masquerade_classes=_classes(cfg.get("masquerade_classes")),
            propagate_canonical="canonical"
            in [v.lower() for v in split_list(cfg.get("propagate_unmatched_extensions"))],
            header_clients=HeaderClients.parse(cfg, registry),
            remote_header_rewrite_domain=cfg.get("remote_header_rewrite_domain"),
        )

    @property
    def active(self) -> bool:
        """False when no map and no masquerading is configured (only step 1)."""
        return bool(
            self.sender_canonical
            or self.recipient_canonical
            or self.canonical
            or self.masquerade_domains
        )


@dataclass(frozen=True)
class HeaderClients:
    """local_header_rewrite_clients: whose headers are rewritten in the
    ``local`` context.  Elements: permit_inet_interfaces, permit_mynetworks,
    permit_sasl_authenticated, and ``[check_address_map] type:table`` (the
    client address looked up; ``static:all`` makes every client local)."""

    inet_interfaces: bool = False
    mynetworks: NetworkList | None = None
    sasl_authenticated: bool = False
    tables: tuple[Maps, ...] = ()
    interfaces: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, cfg: Config, registry: TableRegistry) -> HeaderClients:
        name = "local_header_rewrite_clients"
        words = [w for w in split_list(cfg.get(name)) if w.lower() != "check_address_map"]
        lowered = [w.lower() for w in words]
        return cls(
            inet_interfaces="permit_inet_interfaces" in lowered,
            mynetworks=NetworkList.parse("mynetworks", cfg.get("mynetworks"), registry)
            if "permit_mynetworks" in lowered
            else None,
            sasl_authenticated="permit_sasl_authenticated" in lowered,
            tables=tuple(Maps.from_value(name, w, registry) for w in words if ":" in w),
            interfaces=interface_addresses(
                split_list(cfg.get("inet_interfaces")) + split_list(cfg.get("proxy_interfaces"))
            ),
        )

    async def is_local(self, address: str, sasl_username: str | None) -> bool:
        """Raises TableTempFail."""
        if self.inet_interfaces and address in self.interfaces:
            return True
        if self.sasl_authenticated and sasl_username:
            return True
        if self.mynetworks is not None and await self.mynetworks.match(address):
            return True
        for maps in self.tables:
            if await maps.lookup(address) is not None:
                return True
        return False


def _classes(value: str) -> frozenset[str]:
    return frozenset(item.lower() for item in split_list(value))


# ---------------------------------------------------------------------------
# step 1: trivial-rewrite's local context


def canonicalize(address: str, settings: RewriteSettings, remote_domain: str | None = None) -> str:
    """The standard ``user@fqdn`` form of an address (internal form in and out).
    ``remote_domain``: the ``remote`` context, which completes addresses with
    remote_header_rewrite_domain instead of $myorigin / $mydomain."""
    if address == "":
        return address
    if address.startswith("@") and ":" in address:
        # RFC 5322 obs-route: "@a,@b:user@domain" → "user@domain".
        address = address.split(":", 1)[1]
    local, domain = split_address(address)
    if "@" not in address:
        if settings.swap_bangpath and "!" in local:
            host, _, user = local.partition("!")
            if host and user:
                return canonicalize(f"{user}@{host}", settings, remote_domain)
        if settings.allow_percent_hack and "%" in local:
            user, _, host = local.rpartition("%")
            if user and host:
                return canonicalize(f"{user}@{host}", settings, remote_domain)
        origin = settings.search.myorigin if remote_domain is None else remote_domain
        if not settings.search.append_at_myorigin or not origin:
            return address
        return join_address(local, origin)
    domain = domain.rstrip(".") or domain
    mydomain = settings.mydomain if remote_domain is None else remote_domain
    if (
        settings.append_dot_mydomain
        and mydomain
        and "." not in domain
        and not domain.startswith("[")
    ):
        domain = f"{domain}.{mydomain}"
    return join_address(local, domain)


# ---------------------------------------------------------------------------
# step 2: canonical maps


async def map11(
    maps: Maps,
    address: str,
    search: SearchPolicy,
    *,
    propagate: bool,
    queue_id: str = "",
) -> str:
    """cleanup_map11: the address after applying ``maps`` until it maps to
    itself (at most :data:`MAX_ROUNDS`); raises :class:`RewriteError`."""
    prefix = f"{queue_id}: " if queue_id else ""
    current = address
    for _ in range(MAX_ROUNDS):
        try:
            results = await map_address(maps, current, search, propagate=propagate)
        except TableTempFail:
            log.warning("%s%s", prefix, RewriteError(maps.parameter, current).log_text)
            raise RewriteError(maps.parameter, current) from None
        if results is None:
            return current
        if len(results) > 1:
            log.warning("%smulti-valued %s entry for %s", prefix, maps.parameter, current)
        previous, current = current, results[0]
        if previous.lower() == current.lower():
            return current
    log.warning(
        "%sunreasonable %s map nesting for %s -- message not accepted, try again later",
        prefix,
        maps.parameter,
        current,
    )
    return current


# ---------------------------------------------------------------------------
# step 3: masquerading


def masquerade(address: str, settings: RewriteSettings) -> str:
    """cleanup_masquerade: strip the host part below the first listed parent
    domain; ``!domain`` and an equal domain stop the search unchanged."""
    local, domain = split_address(address)
    if "@" not in address or not domain:
        return address
    if local.lower() in settings.masquerade_exceptions:
        return address
    lowered = domain.lower()
    for entry in settings.masquerade_domains:
        excluded = entry.startswith("!")
        name = entry[1:] if excluded else entry
        if not name:
            continue
        if name == lowered:
            return address
        if lowered.endswith("." + name):
            return address if excluded else join_address(local, name)
    return address


# ---------------------------------------------------------------------------
# all steps


#: (id(settings), remote) → (header memo, settings): see Rewriter.header_memo.
_HEADER_MEMOS: dict[tuple[int, bool], tuple[HeaderMemo, RewriteSettings]] = {}


class Rewriter:
    """The rewriting of one message (its queue id goes into every warning)."""

    def __init__(
        self, settings: RewriteSettings, queue_id: str = "", *, remote: bool = False
    ) -> None:
        self.settings = settings
        self.queue_id = queue_id
        #: Headers in the ``remote`` context (a client not in local_header_rewrite_clients).
        self.remote = remote

    async def _apply(self, address: str, sender: bool, address_class: str) -> str:
        s = self.settings
        remote = self.remote and address_class in (HEADER_SENDER, HEADER_RECIPIENT)
        result = canonicalize(address, s, s.remote_header_rewrite_domain if remote else None)
        if result == "":
            return result
        specific = s.sender_canonical if sender else s.recipient_canonical
        for canonical in (specific, s.canonical):
            if canonical is not None and address_class in canonical.classes:
                result = await map11(
                    canonical.maps,
                    result,
                    s.search,
                    propagate=s.propagate_canonical,
                    queue_id=self.queue_id,
                )
        if s.masquerade_domains and address_class in s.masquerade_classes:
            result = masquerade(result, s)
        return result

    async def envelope_sender(self, address: str) -> str:
        """The envelope sender to queue (the null sender stays null)."""
        return await self._apply(address, True, ENVELOPE_SENDER)

    async def envelope_recipient(self, address: str) -> str:
        """The recipient to expand (virtual aliases come after this)."""
        return await self._apply(address, False, ENVELOPE_RECIPIENT)

    async def header_address(self, address: str, sender: bool) -> str:
        """One address of a header, external form in and out."""
        if address == "" or _undecodable(address):
            # Bytes that are not UTF-8 cannot be looked up faithfully; leave them.
            return address
        cls = HEADER_SENDER if sender else HEADER_RECIPIENT
        return external_form(await self._apply(internal_form(address), sender, cls))

    async def headers(self, lines: list[bytes]) -> list[bytes]:
        """The message with its address headers rewritten; in the ``remote``
        context with an empty remote_header_rewrite_domain, not at all
        (Postfix 2.2+, recorded from 3.7.11)."""
        if self.remote and not self.settings.remote_header_rewrite_domain:
            return lines
        return await rewrite_headers(lines, self.header_address, self.header_memo)

    @property
    def header_memo(self) -> HeaderMemo | None:
        """Where header results may be remembered: only when no canonical
        map and no masquerading can change an address, so that the result
        depends on the header lines and the (fixed) settings alone."""
        s = self.settings
        if s.canonical or s.sender_canonical or s.recipient_canonical or s.masquerade_domains:
            return None
        key = (id(s), self.remote)
        entry = _HEADER_MEMOS.get(key)
        if entry is None or entry[1] is not s:
            if len(_HEADER_MEMOS) > 16:  # settings of earlier reloads
                _HEADER_MEMOS.clear()
            entry = _HEADER_MEMOS[key] = ({}, s)
        return entry[0]


def _undecodable(text: str) -> bool:
    """True when ``text`` holds bytes decoded with surrogateescape."""
    return any("\udc80" <= char <= "\udcff" for char in text)


@dataclass(frozen=True)
class CleanupResult:
    sender: str
    #: One rewritten address per envelope recipient, in the same order.
    recipients: tuple[str, ...]
    #: The message (lines without line ends) with its headers rewritten.
    lines: list[bytes]


async def cleanup_rewrite(
    settings: RewriteSettings,
    sender: str,
    recipients: Sequence[str],
    lines: list[bytes],
    *,
    queue_id: str = "",
    remote_headers: bool = False,
) -> CleanupResult:
    """Rewrite a message's envelope and headers once, before it is queued.
    Expand each returned recipient into virtual aliases afterwards, and keep
    the given recipient as its original (``orig_to``).  Raises
    :class:`RewriteError` (answer ``error.reply``, queue nothing).
    ``remote_headers``: the client is not in local_header_rewrite_clients
    (see :meth:`HeaderClients.is_local`; local submissions never are)."""
    rewriter = Rewriter(settings, queue_id, remote=remote_headers)
    new_sender = await rewriter.envelope_sender(sender)
    new_recipients = tuple([await rewriter.envelope_recipient(r) for r in recipients])
    new_lines = await rewriter.headers(lines)
    return CleanupResult(new_sender, new_recipients, new_lines)
