"""``mailhost sendmail``: the Sendmail-compatible submission command.

Where this sits in the pipeline: programs that send mail the Unix way
(``mail``/``mailx``, cron, scripts) run ``sendmail [options] [--] rcpt...``
with the message on standard input.  This command reads it, works out the
envelope as Postfix's sendmail(1) does, and writes one complete, fsynced queue
file into ``maildrop`` under ``queue_directory`` — whether or not a server is
running.  ``mailhost serve`` with a ``pickup`` line in master.cf later moves
it on (:mod:`mailhost.pickup`; cleanup's header work happens in :mod:`mailhost.cleanup`).
Exit 0 only once the file and its directory entry are on disk.

What is Postfix's, recorded from Postfix 3.7.11 (tests/sendmail/postfix_sendmail.json):

* input ends at EOF or at a line holding only ``.`` (not with ``-i``/``-oi``);
  a CR before the LF is removed; no dot-unstuffing;
* ``-f``/``-r`` is parsed as an RFC 822 address: ``'Name <a@b>'`` gives
  ``a@b``, ``''`` and ``'<>'`` the null sender, more than one address the first
  one and ``sendmail: warning: -f option specified malformed sender: TEXT``;
  without it the sender is the login name (qualified later: ``login@$myorigin``);
* ``-t`` adds the recipients of ``To:``/``Cc:``/``Bcc:`` — only of the
  ``Resent-`` ones when any of those is present — after the command-line ones;
  every command-line argument is itself an address list;
* the full name for a missing ``From:`` is ``-F``, else ``$NAME``, else the
  password file's GECOS field;
* a message larger than ``message_size_limit`` is refused (``sendmail:
  fatal: LOGIN(UID): message file too big``);
* every fatal error, a bad option included, exits 75 (EX_TEMPFAIL) with
  ``sendmail: fatal: ...`` on stderr; a bad option is reported twice first
  (Postfix's sendmail reads its options in two passes).

Modes: ``-bp`` (and the name ``mailq``) runs ``mailhost mailq``; ``-bi``/``-I``
(and the name ``newaliases``) runs ``mailhost newaliases``; ``-q`` runs
``mailhost postqueue -f`` (``-qI<id>``: ``-i <id>``, ``-qR<site>``: ``-s
<site>``); those commands come with mailhost's queue tools and local
delivery.  ``-bs`` is one SMTP session on standard input/output
(:mod:`mailhost.smtpd.standalone`).  ``-bv`` (address verification) and
``-bd``/``-bl`` (start a daemon: use ``mailhost serve``) are not supported
and say so.  Accepted and ignored, as in Postfix: ``-Ax -U -c -m -x -h N -L
label -O opt -p proto -e x -XV -o7 -o8 -om -oX...``, ``-q<interval>``,
``-bh``/``-bH``/``-bm``; ``-n`` is refused as Postfix refuses it.  ``-N``,
``-R``, ``-V`` and ``-B`` are stored as the DSN notify / return / envelope id
and BODY parameters; ``-G`` marks a gateway submission (cleanup adds no
missing headers).

Permissions: the maildrop directory is mode 0730 like Postfix's.  mailhost
has no set-gid postdrop helper: root can always submit; to let ordinary
users submit, give the directory to a group they are in with mode 0770 (the
read bit lets the submitter fsync the directory before it exits 0; without
it the submission fails with exit 75 and leaves nothing).  The file is owned
by the submitting user, which pickup logs as ``uid=N`` and writes into the
``Received:`` header (docs/sendmail.md).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import click

from mailhost.cleanup.headers import header_name, header_value, split_header_section
from mailhost.errors import EX_TEMPFAIL, EX_UNAVAILABLE, MailhostError
from mailhost.queue.qfile import Envelope, Recipient, SubmissionKind, postfix_size
from mailhost.rfc822 import first_address, parse_address_list

PROGRAM = "sendmail"
#: Options that take an argument (Postfix's getopt string, sendmail.c).
WITH_ARGUMENT = frozenset("ABCFLNORVXbefhopr")
FLAGS = frozenset("GIUcimntvx")
_RECIPIENT_HEADERS = ("to", "cc", "bcc")
_RESENT_HEADERS = ("resent-to", "resent-cc", "resent-bcc")
_DSN_NOTIFY = {"success": "SUCCESS", "failure": "FAILURE", "delay": "DELAY", "never": "NEVER"}


class SendmailFatal(Exception):
    """``sendmail: fatal: TEXT``; exit status 75 unless said otherwise."""

    def __init__(self, text: str, status: int = EX_TEMPFAIL, before: Sequence[str] = ()) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.before = tuple(before)


@dataclass
class Options:
    #: mail | mailq | newaliases | flush | flush_id | flush_site | smtp | verify
    #: | daemon | ignore
    mode: str = "mail"
    sender: str | None = None
    full_name: str | None = None
    extract: bool = False
    dot_ends_input: bool = True
    config_dir: Path | None = None
    notify: tuple[str, ...] = ()
    ret: str = ""
    envid: str = ""
    body: str = ""
    verbose: int = 0
    #: -G: a gateway (relay) submission, cleanup adds no missing headers.
    gateway: bool = False
    recipients: list[str] = field(default_factory=list)
    #: the queue command a -q form runs.
    flush: tuple[str, ...] = ()
    #: ``sendmail: warning: ...`` lines for stderr.
    warnings: list[str] = field(default_factory=list)


def _mode_of_b(value: str) -> str:
    letter = value[:1]
    modes = {
        "m": "mail", "p": "mailq", "i": "newaliases", "s": "smtp", "v": "verify",
        "d": "daemon", "l": "daemon", "h": "ignore", "H": "ignore",
    }  # fmt: skip
    if letter not in modes:
        raise SendmailFatal(f"unsupported: -b{letter}")
    return modes[letter]


def _notify(value: str, warnings: list[str]) -> tuple[str, ...]:
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    for word in words:
        if word not in _DSN_NOTIFY:
            warnings.append(f'unknown DSN NOTIFY command value "{word}" in "{value}"')
            break
    else:
        if words and not ("never" in words and len(words) > 1):
            return tuple(_DSN_NOTIFY[w] for w in words)
    warnings.append("bad -N option value -- ignored")
    return ()


def _apply(opts: Options, letter: str, value: str) -> None:
    """One option, as Postfix 3.7.11's sendmail interprets it (recorded)."""
    if letter in ("f", "r"):
        opts.sender = value
    elif letter == "F":
        opts.full_name = value
    elif letter == "t":
        opts.extract = True
    elif letter == "i":
        opts.dot_ends_input = False
    elif letter == "n":
        raise SendmailFatal("-n option not supported")
    elif letter == "o":
        if value.startswith("i"):
            opts.dot_ends_input = False
        # -o7 -o8 -om -oem -odb -oA... -oQ... and the rest: accepted, ignored.
    elif letter == "b":
        opts.mode = _mode_of_b(value)
    elif letter == "I":
        opts.mode = "newaliases"
    elif letter == "C":
        path = Path(value)
        opts.config_dir = path.parent if path.is_file() else path
    elif letter == "N":
        opts.notify = _notify(value, opts.warnings)
    elif letter == "R":
        if value.lower() in ("hdrs", "full"):
            opts.ret = value.upper()
        else:
            opts.warnings.append("bad -R option value -- ignored")
    elif letter == "V":
        opts.envid = value
    elif letter == "B":
        if value.upper() not in ("7BIT", "8BITMIME"):
            raise SendmailFatal("-B option needs 8BITMIME or 7BIT")
        opts.body = value.upper()
    elif letter == "X":
        # -XV asks for VERP, which mailhost does not do: accepted, ignored.
        if not value.startswith("V"):
            raise SendmailFatal(f"unsupported: -X{value[:1]}")
    elif letter == "G":
        opts.gateway = True
    elif letter == "v":
        # Postfix mails a delivery report; mailhost only reports the queue id.
        opts.verbose += 1
    # A U c m x h L O p e: accepted and ignored.


def _queue_option(opts: Options, rest: str) -> None:
    """-q (flush), -qI<id>, -qR<site>, -qS (refused), -q<interval> (ignored)."""
    if rest == "":
        opts.mode, opts.flush = "flush", ("postqueue", "-f")
    elif rest[0] == "I":
        opts.mode, opts.flush = "flush_id", ("postqueue", "-i", rest[1:])
    elif rest[0] == "R":
        opts.mode, opts.flush = "flush_site", ("postqueue", "-s", rest[1:])
    elif rest[0] == "S":
        raise SendmailFatal("-qS is not implemented")
    else:
        opts.mode = "ignore"


_FLUSH_NEEDS_NO_RECIPIENT = {
    "flush": "flush queue mode requires no recipient",
    "flush_id": "flush queue_id requires no recipient",
    "flush_site": "flush site requires no recipient",
}


def parse_args(argv: Sequence[str]) -> Options:
    """getopt(3) semantics: clustered flags (``-ti``), attached or separate
    option arguments (``-fuser``, ``-f user``), ``--`` ends the options, the
    first non-option argument too; ``-q`` takes only an attached argument."""
    opts = Options()
    i = 0
    args = list(argv)
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter == "q":
                _queue_option(opts, arg[j + 1 :])
                break
            if letter in WITH_ARGUMENT:
                value = arg[j + 1 :]
                if value == "":
                    i += 1
                    if i >= len(args):
                        text = f"{PROGRAM}: option requires an argument -- '{letter}'"
                        raise SendmailFatal(f"usage: {PROGRAM} [options]", before=(text, text))
                    value = args[i]
                _apply(opts, letter, value)
                break
            if letter in FLAGS:
                _apply(opts, letter, "")
                j += 1
                continue
            text = f"{PROGRAM}: invalid option -- '{letter}'"
            raise SendmailFatal(f"usage: {PROGRAM} [options]", before=(text, text))
        i += 1
    opts.recipients = args[i:]
    if opts.extract and opts.mode == "verify":
        raise SendmailFatal("-t option cannot be used with -bv")
    if opts.mode in _FLUSH_NEEDS_NO_RECIPIENT and opts.recipients:
        raise SendmailFatal(_FLUSH_NEEDS_NO_RECIPIENT[opts.mode])
    return opts


# -- the message ----------------------------------------------------------------------


def read_message(stream: BinaryIO, *, dot_ends_input: bool) -> list[bytes]:
    """Lines without line ends: EOF or a lone ``.`` (unless -i) ends them."""
    lines: list[bytes] = []
    for raw in stream:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if dot_ends_input and line == b".":
            break
        lines.append(line)
    return lines


def extract_recipients(lines: Sequence[bytes]) -> list[str]:
    """``-t``: To/Cc/Bcc, or only the Resent- ones when any is present."""
    headers, _, _ = split_header_section(lines)
    plain: list[str] = []
    resent: list[str] = []
    for header in headers:
        name = header_name(header)
        if name in _RECIPIENT_HEADERS or name in _RESENT_HEADERS:
            found = [b.address for b in parse_address_list(header_value(header)) if b.address]
            (resent if name in _RESENT_HEADERS else plain).extend(found)
    return resent or plain


def command_line_recipients(args: Sequence[str]) -> list[str]:
    out: list[str] = []
    for arg in args:
        out.extend(b.address for b in parse_address_list(arg) if b.address)
    return out


def gecos_name(entry: pwd.struct_passwd) -> str:
    """The full name in the password file: up to the first comma, ``&``
    standing for the capitalized login name (Postfix fullname.c)."""
    gecos = entry.pw_gecos.split(",", 1)[0]
    return gecos.replace("&", entry.pw_name[:1].upper() + entry.pw_name[1:])


@dataclass(frozen=True)
class User:
    uid: int
    login: str
    gecos: str

    @property
    def tag(self) -> str:
        """``login(uid)``, how Postfix's sendmail names the user in fatal errors."""
        return f"{self.login}({self.uid})"


def current_user() -> User:
    uid = os.getuid()
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        raise SendmailFatal(f"no login name found for user ID {uid}") from None
    return User(uid, entry.pw_name, gecos_name(entry))


def envelope_for(
    opts: Options, user: User, lines: Sequence[bytes], warnings: list[str]
) -> Envelope:
    if opts.sender is None:
        sender = user.login
    else:
        sender, count = first_address(opts.sender)
        if count > 1:
            warnings.append(f"-f option specified malformed sender: {opts.sender}")
    recipients = command_line_recipients(opts.recipients)
    if opts.extract:
        recipients += extract_recipients(lines)
    if not recipients:
        reason = (
            "No recipient addresses found in message header"
            if opts.extract
            else "Recipient addresses must be specified on the command line or via the -t option"
        )
        raise SendmailFatal(f"{user.tag}: {reason}")
    full_name = opts.full_name
    if full_name is None:
        full_name = os.environ.get("NAME") or user.gecos
    return Envelope(
        sender=sender,
        recipients=tuple(Recipient(r, r, opts.notify) for r in recipients),
        arrival_time=time.time(),
        dsn_envid=opts.envid,
        dsn_ret=opts.ret,
        mail_params=(("BODY", opts.body),) if opts.body else (),
        full_name=full_name,
        submission=SubmissionKind.GATEWAY if opts.gateway else SubmissionKind.LOCAL,
    )


async def _drop(queue_directory: str, envelope: Envelope, lines: Sequence[bytes]) -> str:
    from mailhost.queue.layout import MAILDROP  # noqa: PLC0415
    from mailhost.queue.store import QueueStore  # noqa: PLC0415

    store = QueueStore(queue_directory)
    if not (store.root / MAILDROP).is_dir():
        # A fresh installation: create the queue (as root; otherwise it fails
        # and says so).
        await store.setup()
    txn = await store.begin(MAILDROP)
    await txn.commit(envelope, lines)
    return txn.queue_id


def submit(opts: Options, stdin: BinaryIO, stderr: Any) -> int:
    from mailhost.config import load_config  # noqa: PLC0415

    user = current_user()
    cfg = load_config(opts.config_dir)
    lines = read_message(stdin, dot_ends_input=opts.dot_ends_input)
    limit = cfg.get_int("message_size_limit")
    if limit and postfix_size(lines, cfg.get_int("line_length_limit")) > limit:
        # Postfix: postdrop's file size limit is message_size_limit.
        raise SendmailFatal(f"{user.tag}: message file too big")
    warnings = opts.warnings
    envelope = envelope_for(opts, user, lines, warnings)
    for text in warnings:
        print(f"{PROGRAM}: warning: {text}", file=stderr)
    try:
        queue_id = asyncio.run(_drop(cfg.get("queue_directory"), envelope, lines))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise SendmailFatal(
            f"{user.tag}: queue file write error: {where}{exc.strerror or exc}"
        ) from None
    if opts.verbose:
        print(f"{PROGRAM}: queued as {queue_id}", file=stderr)
    return 0


def smtp_session(opts: Options) -> int:
    """-bs: an SMTP dialogue on standard input/output (mailhost.smtpd.standalone)."""
    from mailhost.config import load_config  # noqa: PLC0415
    from mailhost.smtpd.standalone import run_standalone  # noqa: PLC0415

    return run_standalone(load_config(opts.config_dir))


# -- modes delegated to other commands ------------------------------------------------

_DELEGATED = {
    "mailq": ("mailq",),
    "newaliases": ("newaliases",),
}


def delegate(opts: Options) -> int:
    """Run the mailhost command a mode stands for (-bp, -I, -q...)."""
    from mailhost.cli import COMMANDS, main  # noqa: PLC0415

    argv = list(_DELEGATED.get(opts.mode) or opts.flush)
    if argv[0] not in COMMANDS:
        raise SendmailFatal(
            f"mailhost {argv[0]} is not available in this installation", EX_UNAVAILABLE
        )
    if opts.config_dir is not None:
        os.environ["MAILHOST_CONFIG"] = str(opts.config_dir)
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


_UNSUPPORTED = {
    "verify": "-bv (address verification) is not supported by mailhost sendmail",
    "daemon": "-bd/-bl: use mailhost serve to run the mail system",
}


def run(argv: Sequence[str], *, stdin: BinaryIO | None = None, stderr: Any = None) -> int:
    """The whole command; returns the exit status (never raises)."""
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stderr = stderr if stderr is not None else sys.stderr
    try:
        opts = parse_args(argv)
        if opts.mode == "ignore":
            return 0
        if opts.mode in _DELEGATED or opts.flush:
            return delegate(opts)
        if opts.mode == "smtp":
            return smtp_session(opts)
        if opts.mode in _UNSUPPORTED:
            raise SendmailFatal(_UNSUPPORTED[opts.mode], EX_UNAVAILABLE)
        return submit(opts, stdin, stderr)
    except SendmailFatal as exc:
        for line in exc.before:
            print(line, file=stderr)
        print(f"{PROGRAM}: fatal: {exc.text}", file=stderr)
        return exc.status
    except MailhostError as exc:
        print(f"{PROGRAM}: fatal: {exc}", file=stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        print(f"{PROGRAM}: fatal: interrupted", file=stderr)
        return EX_TEMPFAIL


def main() -> NoReturn:
    """The ``mailhost-sendmail`` console script.  Installed (or linked) under
    the name ``mailq`` it lists the queue, as ``newaliases`` it rebuilds the
    aliases, under any other name (``sendmail``) it submits mail — as
    Postfix's sendmail looks at its own name."""
    name = Path(sys.argv[0]).name
    argv = sys.argv[1:]
    if name == "mailq":
        argv = ["-bp", *argv]
    elif name == "newaliases":
        argv = ["-I", *argv]
    sys.exit(run(argv))


class RawArguments(click.Command):
    """A click command that hands its arguments over untouched: sendmail's
    options (``-oi``, ``-bs``, ``-f ''``, ``--``) are not click's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["raw_args"] = list(args)
        return []


@click.command("sendmail", cls=RawArguments, add_help_option=False)
def sendmail() -> None:
    """Submit mail like Sendmail/Postfix sendmail: sendmail [options] [--] rcpt..."""
    raw: list[str] = click.get_current_context().meta["raw_args"]
    sys.exit(run(raw))
