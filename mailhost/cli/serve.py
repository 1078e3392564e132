"""``mailhost serve``: run the SMTP listeners of master.cf in the foreground.

Logs go to ``maillog_file`` when it is set (:mod:`mailhost.maillog`), else
to stderr, as ``mailhost/smtpd[PID]: ...`` maillog lines and, with
``--syslog``, also to the local syslog socket under ``syslog_facility`` (so
the lines land in /var/log/mail.log where pflogsumm reads them).  SIGTERM stops
cleanly, SIGHUP reloads main.cf, master.cf and the tables without dropping
connections.  Exit status: 0 after a clean stop, 1 for a configuration error
(``mailhost: fatal: ...``, never a traceback).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailhost import eventloop, prefork
from mailhost.cli.common import config_dir_option, fatal
from mailhost.errors import MailhostError
from mailhost.log import DaemonFormatter, MaillogHandler, flush_logs, logger
from mailhost.maillog import describe, host_label, maillog_path, open_maillog
from mailhost.prefork import Role
from mailhost.smtpd.server import MailServer

if TYPE_CHECKING:
    from mailhost.master import Master

_FACILITIES = logging.handlers.SysLogHandler.facility_names


@dataclass(frozen=True)
class MaillogFile:
    """An opened ``maillog_file`` (:mod:`mailhost.maillog`) and its lines' host."""

    path: str
    host: str


def setup_daemon_logging(
    *,
    stderr: bool = True,
    syslog: str | None = None,
    maillog: MaillogFile | None = None,
    by_name: bool = False,
) -> None:
    """Route mailhost's records to ``maillog`` (maillog_file; with
    ``by_name`` opened for each write, for the prefork parent) or else
    stderr, and/or syslog, as maillog lines.  OSError when ``maillog``
    cannot be opened."""
    root = logger()
    handler: MaillogHandler | None = None
    if maillog is not None:
        stream = open_maillog(maillog.path, by_name=by_name)
        handler = MaillogHandler(stream, maillog.path, maillog.host)
    elif stderr:
        handler = MaillogHandler(sys.stderr)
    for old in list(root.handlers):
        root.removeHandler(old)
    if handler is not None:
        handler.setFormatter(DaemonFormatter("smtpd"))
        root.addHandler(handler)
        handler.direct()
    if syslog is not None:
        facility = _FACILITIES.get(syslog, logging.handlers.SysLogHandler.LOG_MAIL)
        try:
            sys_handler = logging.handlers.SysLogHandler("/dev/log", facility=facility)
        except OSError as exc:
            # No syslog daemon here: keep stderr and say why.
            logger().warning("cannot log to syslog: /dev/log: %s", exc.strerror)
        else:
            sys_handler.setFormatter(DaemonFormatter("smtpd"))
            root.addHandler(sys_handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    # The daemon's lines carry neither source positions nor thread/process
    # names: skip collecting them for every record (the logging HOWTO's
    # "Optimization" switches; logging was a sixth of the event loop's busy
    # time under smtp-source, docs/benchmarks.md).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def daemon_logging_or_fatal(
    *, syslog: str | None, maillog: MaillogFile | None, by_name: bool = False
) -> None:
    """setup_daemon_logging, or ``mailhost: fatal: open maillog_file ...``
    (exit 1) when the file cannot be opened."""
    try:
        setup_daemon_logging(syslog=syslog, maillog=maillog, by_name=by_name)
    except OSError as exc:
        assert maillog is not None
        fatal("mailhost", describe(maillog.path, exc), 1)


def run_server(
    master: Master, *, syslog: str | None = None, maillog: MaillogFile | None = None
) -> int:
    """Run until SIGTERM; the exit status.  The master's pipeline stops
    after the listeners closed (the queue manager finishing its deliveries)."""
    daemon_logging_or_fatal(syslog=syslog, maillog=maillog)
    server = MailServer(
        master.config_dir, master, master_cf=master.master_cf_path, role=master.role
    )

    async def main() -> None:
        try:
            await server.serve_forever()
        finally:
            await master.stop()

    try:
        eventloop.run(main())
    except MailhostError as exc:
        logger().critical("%s", exc)
        return exc.exit_status
    except OSError as exc:
        logger().critical("%s", exc)
        return 1
    finally:
        flush_logs()  # the lines of the loop's last pass
    return 0


def anvil_main(config_dir: Path | None) -> prefork.AnvilMain:
    """The anvil process's body for several workers (mailhost.anvil.service),
    with its two parameters read from main.cf at start and at SIGHUP."""
    from mailhost.anvil.service import run_anvil  # noqa: PLC0415 - only with workers

    current = anvil_settings(config_dir, (60, 600.0))

    def settings() -> tuple[int, float]:
        nonlocal current
        current = anvil_settings(config_dir, current)
        return current

    return lambda sockets: run_anvil(sockets, settings)


def anvil_settings(config_dir: Path | None, fallback: tuple[int, float]) -> tuple[int, float]:
    """(anvil_rate_time_unit, anvil_status_update_time); ``fallback`` when
    main.cf cannot be read (the workers report that)."""
    from mailhost.config import load_config  # noqa: PLC0415

    try:
        cfg = load_config(config_dir)
        unit = max(1, int(cfg.get_time("anvil_rate_time_unit")))
        return unit, max(1.0, cfg.get_time("anvil_status_update_time"))
    except MailhostError as exc:
        logger().warning("anvil: %s; keeping the previous settings", exc)
        return fallback


@click.command("serve")
@config_dir_option
@click.option(
    "--master-cf",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="master.cf to read (default: master.cf in the configuration directory).",
)
@click.option("--syslog", "use_syslog", is_flag=True, help="Also log to syslog (/dev/log).")
def serve(config_dir: Path | None, master_cf: Path | None, use_syslog: bool) -> None:
    """Run the SMTP server in the foreground (listeners from master.cf)."""
    from mailhost.config import load_config  # noqa: PLC0415
    from mailhost.master import Master, recover_once, trigger_once  # noqa: PLC0415 - loads the whole pipeline

    facility = None
    maillog = None
    try:
        cfg = load_config(config_dir)
        if use_syslog:
            facility = cfg.get("syslog_facility")
        path = maillog_path(cfg)
        if path:
            maillog = MaillogFile(path, host_label(cfg))
    except MailhostError as exc:
        fatal("mailhost", str(exc), exc.exit_status)
    try:
        configured = cfg.get_int("mailhost_worker_processes")
    except MailhostError:
        configured = 1  # run_server reports the configuration error as usual
    try:
        workers = prefork.worker_processes(configured)
    except MailhostError as exc:
        fatal("mailhost", str(exc), exc.exit_status)

    def run_one(role: Role) -> int:
        master = Master(config_dir, master_cf, role=role)
        return run_server(master, syslog=facility, maillog=maillog)

    if workers <= 1:
        sys.exit(run_one(Role()))
    daemon_logging_or_fatal(syslog=facility, maillog=maillog, by_name=True)
    try:
        recover_once(config_dir, master_cf)
        trigger = trigger_once(config_dir, master_cf)
    except (MailhostError, OSError) as exc:
        fatal("mailhost", str(exc), getattr(exc, "exit_status", 1))
    from mailhost.smtpd.server import shared_listeners  # noqa: PLC0415 - only with workers

    listeners = shared_listeners(config_dir, master_cf)
    sys.exit(prefork.run_workers(workers, run_one, anvil_main(config_dir), listeners, trigger))
