"""master.cf services other than the smtpd listeners: which ones mailhost
does in-process, which ones it has no need for, and which ones it must name
in a warning because something the administrator set up will not happen.

Postfix splits its work over daemons that master(8) starts from master.cf;
mailhost does that work inside ``mailhost serve``, so most lines of a stock
master.cf (Debian's ``/usr/share/postfix/master.cf.dist``) describe work that
is done anyway and load without a word.  A daemon is recognised by its
command *and* the service name Postfix's defaults give it (the
``*_service_name`` parameters, postconf(5)): a second ``cleanup`` under
another name, or an ``smtp`` client service called ``smtp-amavis``, is an
extra service Postfix would run and mailhost does not, so it is named.

What is warned about (:func:`service_warnings`):

* a command mailhost does not run (``postscreen``, ``pipe`` transports such
  as maildrop/uucp/bsmtp/mailman, ``spawn`` policy services, ``qmqpd``,
  ``oqmgr``, ...);
* a known daemon under a name mailhost does not serve;
* ``-o`` overrides on a service other than an smtpd listener (mailhost
  applies main.cf to its in-process work), except ``syslog_name``, which only
  changes Postfix's log tag;
* ``dnsblog``, ``tlsproxy`` and the ``pass`` smtpd only exist for
  postscreen: they are warned about only when postscreen is configured (its
  own warning says what matters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: Postfix daemon (command) -> the service names under which mailhost does its
#: work in-process, with where that work lives.
IN_PROCESS: Mapping[str, frozenset[str]] = {
    # mailhost.master starts these when master.cf declares them
    "qmgr": frozenset({"qmgr"}),  # mailhost.qmgr
    "pickup": frozenset({"pickup"}),  # mailhost.pickup
    # transports the queue manager runs (mailhost.qmgr.service.build_manager)
    "smtp": frozenset({"smtp", "relay"}),
    "lmtp": frozenset({"lmtp"}),
    "local": frozenset({"local"}),
    "virtual": frozenset({"virtual"}),
    "error": frozenset({"error", "retry"}),
    "discard": frozenset({"discard"}),
    # daemons whose work is done inside smtpd, cleanup and the queue manager
    "cleanup": frozenset({"cleanup"}),  # mailhost.cleanup
    "trivial-rewrite": frozenset({"rewrite"}),  # mailhost.resolve
    "bounce": frozenset({"bounce", "defer", "trace"}),  # mailhost.bounce
    "flush": frozenset({"flush"}),  # postqueue -f: mailhost.qmgr.trigger
    "proxymap": frozenset({"proxymap", "proxywrite"}),  # tables open in each process
    "scache": frozenset({"scache"}),  # mailhost.delivery.connection_cache
    "anvil": frozenset({"anvil"}),  # smtpd's connection counters
    "showq": frozenset({"showq"}),  # mailq reads the queue directly
    # not needed: no work of theirs exists in mailhost
    "tlsmgr": frozenset({"tlsmgr"}),  # Python's ssl seeds itself; no TLS session cache
    "verify": frozenset({"verify"}),  # no address verification probes
    "postlogd": frozenset({"postlog"}),  # lines go to stderr or syslog (mailhost serve --syslog)
}

#: mailhost's own services, run under any service name (the listening
#: address) with their ``-o`` overrides applied: the quota-status policy
#: service (mailhost.quota.status_service) and the LMTP store (mailhost.lmtpd).
OWN_SERVICES = frozenset({"quota-status", "lmtpd"})

#: Services that only exist for postscreen(8).
POSTSCREEN_HELPERS = frozenset({"dnsblog", "tlsproxy"})

#: The one ``-o`` setting that is about Postfix's logging only.
HARMLESS_OVERRIDES = frozenset({"syslog_name"})


def is_smtpd_listener(type_: str, program: str) -> bool:
    return type_ == "inet" and program == "smtpd"


def service_warnings(
    entries: Iterable[tuple[str, str, str, Iterable[str]]],
) -> list[tuple[int, str]]:
    """(index into ``entries``, warning) for each service mailhost will not
    run as master.cf says.  An entry is (service, type, program, -o names)."""
    items = list(entries)
    postscreen = any(program == "postscreen" for _, _, program, _ in items)
    out: list[tuple[int, str]] = []
    for index, (service, type_, program, overrides) in enumerate(items):
        if is_smtpd_listener(type_, program) or program in OWN_SERVICES:
            continue
        helper = program in POSTSCREEN_HELPERS or (type_ == "pass" and program == "smtpd")
        if helper:
            if postscreen:
                out.append((index, "is not run by mailhost (it serves postscreen); ignored"))
            continue
        names = IN_PROCESS.get(program)
        if names is None:
            out.append((index, "is not run by mailhost; ignored"))
            continue
        if service not in names:
            out.append((index, f"is not run by mailhost (it runs {program} as "
                        f"{', '.join(sorted(names))} only); ignored"))  # fmt: skip
            continue
        applied = sorted(set(overrides) - HARMLESS_OVERRIDES)
        if applied:
            out.append((index, "-o " + ", ".join(applied) + " not applied by mailhost; ignored"))
    return out
