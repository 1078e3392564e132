"""The mailbox states shared by the quota-status recordings and tests: the
mailboxes, limits and SIZE= cases of the Dovecot recording
(postfix_quota_status.json), plus aliases (a fan-out Dovecot cannot judge)
and an unknown user, set up as a mailhost site: main.cf and Maildirs with
the same ``maildirsize`` contents.  Dovecot's default quota_grace (10 %) is
set so the answers are comparable."""

from __future__ import annotations

import json
from pathlib import Path

DOVECOT = json.loads((Path(__file__).parent / "postfix_quota_status.json").read_text())
LIMIT: int = DOVECOT["limit"]
MAILBOXES: dict[str, int] = DOVECOT["mailboxes"]

#: alias -> its members (all in example.com).
ALIASES = {
    "allfull": ["full"],
    "mixed": ["full", "half"],
    "bothfull": ["full", "full2"],
}
#: case -> (SIZE= or None, RCPT TO address): the Dovecot cases, then ours.
CASES: dict[str, tuple[int | None, str]] = {
    **{name: (size, rcpt) for name, (size, rcpt) in DOVECOT["cases"].items()},
    "alias_to_full_mailbox": (None, "allfull@example.com"),
    "alias_fanout_one_full": (None, "mixed@example.com"),
    "alias_fanout_all_full": (None, "bothfull@example.com"),
    "unknown_user": (None, "nobody@example.com"),
    "other_domain": (None, "someone@elsewhere.example"),
}


def alias_map() -> str:
    """The aliases as an inline: table (Postfix and mailhost read the same)."""
    entries = [f"{{{a}@example.com={','.join(m + '@example.com' for m in ms)}}}"
               for a, ms in ALIASES.items()]  # fmt: skip
    return "inline:{" + ", ".join(entries) + "}"


def write_site(directory: Path, extra: str = "") -> None:
    """main.cf and the Maildirs of a mailhost site in ``directory``."""
    names = sorted([*MAILBOXES, "full2"])
    mailboxes = ", ".join(f"{n}@example.com=example.com/{n}/" for n in names)
    limits = ", ".join(f"{n}@example.com={LIMIT}" for n in names)
    (directory / "main.cf").write_text(
        "mydestination =\nalias_maps =\nvirtual_mailbox_domains = example.com\n"
        f"virtual_mailbox_base = {directory}/vmail\n"
        f"virtual_mailbox_maps = inline:{{{mailboxes}}}\n"
        f"virtual_alias_maps = {alias_map()}\n"
        f"virtual_mailbox_limit_maps = inline:{{{limits}}}\n"
        "mailhost_quota_grace = 10%\n" + extra
    )
    for name, used in [*MAILBOXES.items(), ("full2", LIMIT)]:
        maildir = directory / "vmail" / "example.com" / name
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        (maildir / "maildirsize").write_text(f"{LIMIT}S\n{used} {1 if used else 0}\n")
