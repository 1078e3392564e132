"""A store's quota-status service and its lmtpd (master.cf lines with the
same ``-o`` overrides) share one table registry, so the database is asked
once for a mailbox and its limit, not once by each (docs/scaling.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailhost.config import load_config
from mailhost.master import Master
from tests.lmtpd.site import MAILBOXES, LmtpClient, write_mailhost_site
from tests.support.net import free_port


def sqlite_tables(directory: Path) -> str:
    """The mailboxes and their limits in an SQLite database, as main.cf lines
    (they come after, and so override, the site's inline: tables)."""
    db = directory / "mailboxes.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE mailbox (username TEXT, maildir TEXT, quota INTEGER)")
        conn.executemany(
            "INSERT INTO mailbox VALUES (?, ?, ?)",
            [
                (f"{n}@example.com", f"example.com/{n}/", limit)
                for n, (limit, _) in MAILBOXES.items()
            ],
        )
    for name, column in (("mailboxes.cf", "maildir"), ("limits.cf", "quota")):
        (directory / name).write_text(
            f"dbpath = {db}\nquery = SELECT {column} FROM mailbox WHERE username = '%s'\n"
        )
    return (
        f"virtual_mailbox_maps = sqlite:{directory}/mailboxes.cf\n"
        f"virtual_mailbox_limit_maps = sqlite:{directory}/limits.cf\n"
    )


def misses(master: Master) -> int:
    """Lookups that went to a table, over every registry of the services."""
    return sum(
        stats.misses
        for registry in master.status_registries
        for stats in registry.cache_stats().values()
    )


async def test_quota_status_and_lmtpd_ask_the_database_once(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    with (tmp_path / "main.cf").open("a") as main_cf:
        main_cf.write(sqlite_tables(tmp_path))
    lmtp, policy, other = free_port(), free_port(), free_port()
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{lmtp} inet n - n - - lmtpd\n"
        f"127.0.0.1:{policy} inet n - n - - quota-status\n"
        # Other overrides, other tables: a registry of its own.
        f"127.0.0.1:{other} inet n - n - - quota-status -o mailhost_table_cache_ttl=5s\n"
    )
    cfg = load_config(tmp_path)
    master = Master(tmp_path, None)
    await master.start_quota_status(cfg)
    await master.start_lmtpd(cfg)
    try:
        assert len(master.status_registries) == 2
        request = {"request": "smtpd_access_policy", "recipient": "alice@example.com"}
        assert await master.quota_status[0].action(request) == "DUNNO"
        asked = misses(master)
        assert asked > 0  # the mailbox and its limit, from the database
        client, _ = await LmtpClient.connect(lmtp)
        try:
            await client.command("LHLO edge.example.com")
            await client.command("MAIL FROM:<s@client.test>")
            assert (await client.command("RCPT TO:<alice@example.com>")).startswith("250")
            await client.command("QUIT")
        finally:
            await client.close()
        assert misses(master) == asked  # lmtpd found both in the shared cache
    finally:
        await master.stop()
