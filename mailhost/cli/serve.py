"""``mailhost serve``: run the SMTP listeners of master.cf in the foreground.

Logs go to stderr as ``mailhost/smtpd[PID]: ...`` maillog lines and, with
``--syslog``, to the local syslog socket under ``syslog_facility`` (so the
lines land in /var/log/mail.log where pflogsumm reads them).  SIGTERM stops
cleanly, SIGHUP reloads main.cf, master.cf and the tables without dropping
connections.  Exit status: 0 after a clean stop, 1 for a configuration error
(``mailhost: fatal: ...``, never a traceback).
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from mailhost import eventloop, prefork
from mailhost.cli.common import config_dir_option, fatal
from mailhost.config import Config
from mailhost.errors import MailhostError
from mailhost.log import DaemonFormatter, MaillogHandler, flush_logs, logger
from mailhost.smtpd.server import MailServer, Wiring

_FACILITIES = logging.handlers.SysLogHandler.facility_names


def setup_daemon_logging(*, stderr: bool = True, syslog: str | None = None) -> None:
    """Route mailhost's records to stderr and/or syslog as maillog lines."""
    root = logger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if stderr:
        handler = MaillogHandler(sys.stderr)
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


def with_metrics(wiring: Wiring) -> Wiring:
    """``wiring`` that also opens ``/metrics`` on mailhost_metrics_listen at start-up."""
    original = wiring.startup

    async def startup(cfg: Config) -> None:
        from mailhost.observe.exporter import serve_metrics  # noqa: PLC0415 - prometheus_client on demand

        if prefork.is_first_worker():
            # One listener per host; with several workers its counters are
            # worker 0's (the queue sizes are the whole queue's).
            serve_metrics(cfg.get("mailhost_metrics_listen"), Path(cfg.get("queue_directory")))
        if original is not None:
            await original(cfg)

    return dataclasses.replace(wiring, startup=startup)


def run_server(
    config_dir: Path | None,
    wiring: Wiring,
    *,
    master_cf: Path | None = None,
    syslog: str | None = None,
    stop: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Run until SIGTERM; the exit status.  ``stop`` runs after the listeners
    closed (the queue manager finishing its deliveries)."""
    setup_daemon_logging(syslog=syslog)
    server = MailServer(config_dir, wiring, master_cf=master_cf)

    async def main() -> None:
        try:
            await server.serve_forever()
        finally:
            if stop is not None:
                await stop()

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
    from mailhost.qmgr.service import QueueManagerService  # noqa: PLC0415
    from mailhost.smtpd.wiring import default_wiring  # noqa: PLC0415 - loads resolver and queue

    facility = None
    try:
        qmgr = QueueManagerService(master_cf)
        wiring = with_metrics(qmgr.wrap(default_wiring()))
        if use_syslog:
            facility = load_config(config_dir).get("syslog_facility")
    except MailhostError as exc:
        fatal("mailhost", str(exc), exc.exit_status)
    try:
        workers = load_config(config_dir).get_int("mailhost_worker_processes")
    except MailhostError:
        workers = 1  # run_server reports the configuration error as usual

    def run_one() -> int:
        return run_server(config_dir, wiring, master_cf=master_cf, syslog=facility, stop=qmgr.stop)

    if workers <= 1:
        sys.exit(run_one())
    setup_daemon_logging(syslog=facility)
    try:
        prefork.recover_once(config_dir, master_cf)
    except (MailhostError, OSError) as exc:
        fatal("mailhost", str(exc), getattr(exc, "exit_status", 1))
    sys.exit(prefork.run_workers(workers, run_one))
