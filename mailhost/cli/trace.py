"""``mailhost trace ADDRESS``: explain what the server would do with a recipient.

Runs the server's own resolver and sender restrictions (never a
re-implementation) with a trace attached and prints: the address class and
why, every table consulted in order with the exact key and its outcome, the
SMTP reply to RCPT TO, the recipients after virtual alias expansion, and for
each final mailbox its path under ``virtual_mailbox_base``, its quota limit
from ``virtual_mailbox_limit_maps`` and its usage from ``maildirsize`` (the
RCPT reply includes the quota check, with ``--size`` as the client's SIZE=).
With ``transport_maps`` (an edge node of a cluster) each final recipient
also shows its route, transport and nexthop, and for an lmtp route the
store's host and port (docs/cluster.md).
``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailhost.address import AddressError, parse_path
from mailhost.cleanup.seams import ClientInfo
from mailhost.cli.common import command_errors, config_dir_option
from mailhost.config import Config, load_config
from mailhost.errors import TableTempFail, UsageError
from mailhost.fsutil import UnsafePathError, safe_join
from mailhost.quota.policy import QuotaValueError, percent_used
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.reply import RCPT_OK
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.resolve.keys import find
from mailhost.resolve.resolver import Resolution, Resolver, ResolverSettings
from mailhost.resolve.stores import store_host
from mailhost.resolve.trace import Trace
from mailhost.resolve.transport_maps import Router
from mailhost.smtpd.recipients import ResolverPolicy
from mailhost.smtpd_check.build import smtpd_checks
from mailhost.smtpd_check.state import CheckState, Client, Where
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry


def _client_info(client: TraceClient) -> ClientInfo:
    return ClientInfo(
        name="unknown",
        address=client.address,
        port=0,
        helo=None,
        protocol="ESMTP",
        sasl_username=client.sasl_username,
    )


async def _route_facts(router: Router, final: str, trace: Trace) -> dict[str, Any]:
    """Where the queue manager sends ``final``: the class's transport unless
    transport_maps says otherwise (in a cluster: the mailbox's store, else its
    domain's), and the store's host and port for an lmtp/smtp route.  Nothing
    without transport_maps: the class's transport (shown anyway) is the route."""
    if not router.transport_maps.maps:
        return {}
    try:
        route = await router.route(final, trace)
    except TableTempFail as exc:
        return {"route": f"temporary failure: {exc}"}
    facts: dict[str, Any] = {"route": {"transport": route.transport, "nexthop": route.nexthop}}
    host = store_host(route)
    if host is not None:
        facts["store"] = f"unix:{host.path}" if host.host is None else f"{host.host}:{host.port}"
    return facts


async def _mailbox_facts(
    config: Config, registry: TableRegistry, resolver: Resolver, recipient: Resolution,
    trace: Trace, quota: RcptQuotaCheck | None = None, router: Router | None = None,
) -> dict[str, Any]:  # fmt: skip
    facts: dict[str, Any] = {
        "original": recipient.original,
        "final": recipient.final,
        "class": recipient.address_class.value if recipient.address_class else None,
        "transport": recipient.transport,
    }
    if router is not None:
        facts.update(await _route_facts(router, recipient.final, trace))
    if recipient.mailbox is None:
        return facts
    facts["mailbox"] = recipient.mailbox
    base = config.get("virtual_mailbox_base")
    try:
        path = safe_join(base, recipient.mailbox) if base else None
        facts["path"] = f"{path}{'/' if recipient.mailbox.endswith('/') else ''}" if path else None
        facts["format"] = "maildir" if recipient.mailbox.endswith("/") else "mbox"
    except UnsafePathError as exc:
        facts["path"] = f"refused: {exc}"
    limits = Maps.from_value(
        "virtual_mailbox_limit_maps", config.get("virtual_mailbox_limit_maps"), registry
    )
    if limits:
        try:
            hit = await find(limits, recipient.final, resolver.settings.search, trace)
        except TableTempFail as exc:
            facts["quota_limit"] = f"temporary failure: {exc}"
        else:
            limit = None if hit is None else hit.value
            facts["quota_limit"] = (
                "no entry" if limit is None else "unlimited" if limit == "0" else f"{limit} bytes"
            )
    if quota is not None:
        try:
            seen = await quota.mailbox(recipient, trace)
        except (TableTempFail, QuotaValueError) as exc:
            facts["quota_usage"] = f"unknown: {exc}"
        else:
            if seen is not None:
                state = seen.state
                facts["quota_usage"] = {
                    "bytes": state.usage.bytes,
                    "messages": state.usage.count,
                    "limit_bytes": state.limits.bytes,
                    "limit_messages": state.limits.count,
                    "percent": percent_used(state.limits, state.usage),
                }
    return facts


@dataclass(frozen=True)
class TraceClient:
    """The SMTP client a trace pretends to be."""

    address: str
    sasl_username: str | None = None


async def _trace(
    config: Config, address: str, client: TraceClient, sender: str, size: int = 0
) -> tuple[dict[str, Any], Trace]:
    registry = TableRegistry.from_config(config)
    trace = Trace()
    report: dict[str, Any] = {
        "address": address,
        "sender": sender or "<>",
        "client": client.address,
        "sasl_username": client.sasl_username,
    }
    try:
        resolver = Resolver(ResolverSettings.from_config(config, registry))
        checks = smtpd_checks(config, registry, resolver)
        state = CheckState(
            Client("unknown", client.address),
            sender=sender,
            where=Where.RCPT,
            protocol="ESMTP",
            sasl_username=client.sasl_username,
            sasl_method="PLAIN" if client.sasl_username else None,
            trace=trace,
        )
        quota = RcptQuotaCheck.from_config(config, registry, resolver)
        refused = await checks.rcpt(state, address)
        # The mailboxes are shown even when only the quota refuses.
        accepted = refused is None
        if refused is None:
            refused = await ResolverPolicy(resolver, quota).check_recipient(
                address, sender, _client_info(client), size
            )
            accepted = refused is None or refused.code != 451
        report["rcpt_reply"] = str(refused or RCPT_OK)
        try:
            classification = await resolver.classify(address, trace)
        except TableTempFail:
            classification = None
        if classification is not None:
            report["class"] = classification.address_class.value
            report["class_reason"] = classification.reason
        if accepted:
            try:
                finals = await resolver.expand(
                    resolver.canonical(address), resolve=True, trace=trace
                )
            except AliasExpansionError as exc:
                report["end_of_data_reply"] = str(exc.reply)
                report["expansion_problem"] = exc.log_text
            except TableTempFail as exc:
                report["expansion_problem"] = f"temporary failure: {exc}"
            else:
                router = Router.from_config(config, registry, resolver)
                report["recipients"] = [
                    await _mailbox_facts(config, registry, resolver, r, trace, quota, router)
                    for r in finals
                ]
    finally:
        await registry.close()
    return report, trace


def _print_human(report: dict[str, Any], trace: Trace) -> None:
    click.echo(f"recipient:  {report['address']}")
    who = report["client"] + (
        f", authenticated as {report['sasl_username']}" if report["sasl_username"] else ""
    )
    click.echo(f"sender:     {report['sender']}    client: {who}")
    if "class" in report:
        click.echo(f"class:      {report['class']} ({report['class_reason']})")
    click.echo("steps:")
    for event in trace.events:
        click.echo(f"  {event}")
    if "sender_reply" in report:
        click.echo(f"sender:     refused by smtpd_sender_restrictions: {report['sender_reply']}")
    click.echo(f"RCPT reply: {report['rcpt_reply']}")
    if "expansion_problem" in report:
        click.echo(f"expansion:  {report['expansion_problem']}")
    if "end_of_data_reply" in report:
        click.echo(f"end of DATA would answer: {report['end_of_data_reply']}")
    for r in report.get("recipients", []):
        line = f"  -> {r['final']}  class={r['class']} transport={r['transport']}"
        route = r.get("route")
        if isinstance(route, dict):
            line += f" route={route['transport']}:{route['nexthop']}"
        elif route is not None:
            line += f" route={route}"
        if "store" in r:
            line += f" store={r['store']}"
        if "mailbox" in r:
            line += f" {r.get('format', '')} {r.get('path')}"
        if "quota_limit" in r:
            line += f" quota={r['quota_limit']}"
        used = r.get("quota_usage")
        if isinstance(used, dict):
            pct = "" if used["percent"] is None else f" ({used['percent']}%)"
            line += f" used={used['bytes']} bytes, {used['messages']} messages{pct}"
        elif used is not None:
            line += f" used={used}"
        click.echo(line)


@click.command(context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("--sender", default="", help="Envelope sender (MAIL FROM), default <>.")
@click.option("--client", "client_ip", default="192.0.2.1", show_default=True,
              help="Client IP address the restrictions see.")  # fmt: skip
@click.option("--sasl-user", default=None, help="Treat the client as authenticated as USER.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option("--size", type=click.IntRange(min=0), default=0,
              help="Declared message size (MAIL FROM SIZE=) for the quota check.")  # fmt: skip
@click.argument("address")
@command_errors("trace")
def trace(
    config_dir: Path | None,
    sender: str,
    client_ip: str,
    sasl_user: str | None,
    as_json: bool,
    size: int,
    address: str,
) -> None:
    """Explain how the server resolves ADDRESS: class, lookups, reply, final mailboxes."""
    config = load_config(config_dir)
    try:
        internal = parse_path(address if address.startswith("<") else f"<{address}>")
    except AddressError as exc:
        raise UsageError(f"bad address {address!r}: {exc}") from None
    report, steps = asyncio.run(
        _trace(config, internal, TraceClient(client_ip, sasl_user), sender, size)
    )
    if as_json:
        report["steps"] = [vars(e) for e in steps.events]
        click.echo(json.dumps(report, indent=2))
    else:
        _print_human(report, steps)
