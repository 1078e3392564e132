"""SQLAlchemy models of the provisioning schema.

Table and column names, types and meanings are PostfixAdmin's, because the
lookup tables (``virtual_mailbox_maps = mysql:/etc/postfix/...``) and Dovecot's
SQL passdb/userdb read these columns directly:

* ``mailbox.quota`` is in **bytes**, 0 = unlimited;
* ``domain.maxquota`` (per-mailbox maximum) and ``domain.quota`` (domain total)
  are in PostfixAdmin's **MB** (``$CONF['quota_multiplier']`` bytes), 0 =
  unlimited, -1 = disabled;
* ``domain.mailboxes`` / ``domain.aliases`` are limits: 0 = unlimited, -1 =
  none allowed;
* ``alias.goto`` is a comma-separated list of addresses;
* ``active`` is a boolean (tinyint(1) on MySQL, boolean on PostgreSQL, 0/1 on
  SQLite), so query files may compare ``active = '1'`` on every backend.

Domain names are stored in their A-label (IDNA) form, as Postfix compares them.
Tables and columns of mailhost's own are prefixed ``mailhost_`` (``mailbox.mailhost_transport``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: PostfixAdmin's "never" timestamp, the server default of created/modified.
EPOCH_DEFAULT = "2000-01-01 00:00:00"


def utcnow() -> datetime:
    """Timestamps are stored as naive UTC, which every backend keeps unchanged."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every provisioning table."""


def _active() -> Mapped[bool]:
    return mapped_column(Boolean, nullable=False, default=True, server_default="1")


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime, nullable=False, default=utcnow, server_default=EPOCH_DEFAULT)


def _modified() -> Mapped[datetime]:
    return mapped_column(
        DateTime, nullable=False, default=utcnow, onupdate=utcnow, server_default=EPOCH_DEFAULT
    )


class Domain(Base):
    """A hosted domain (PostfixAdmin ``domain``)."""

    __tablename__ = "domain"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    aliases: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    mailboxes: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    maxquota: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    quota: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    transport: Mapped[str] = mapped_column(String(255), nullable=False, default="virtual")
    backupmx: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="0"
    )
    created: Mapped[datetime] = _created()
    modified: Mapped[datetime] = _modified()
    active: Mapped[bool] = _active()
    #: Days a new password stays valid (0: never expires), PostfixAdmin's
    #: ``password_expiration`` feature.
    password_expiry: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Mailbox(Base):
    """A mailbox: login, password hash, Maildir path and quota (``mailbox``)."""

    __tablename__ = "mailbox"
    __table_args__ = (Index("mailbox_domain_idx", "domain"),)

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    password: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    maildir: Mapped[str] = mapped_column(String(255), nullable=False)
    quota: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    local_part: Mapped[str] = mapped_column(String(255), nullable=False)
    domain: Mapped[str] = mapped_column(String(255), nullable=False)
    created: Mapped[datetime] = _created()
    modified: Mapped[datetime] = _modified()
    active: Mapped[bool] = _active()
    #: When the password stops working in PostfixAdmin's Dovecot query
    #: (``m.password_expiry > now() OR d.password_expiry = 0``).
    password_expiry: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, default=utcnow, server_default=EPOCH_DEFAULT
    )
    #: mailhost's own column: the transport(5) value (``lmtp:inet:store-1:24``)
    #: of the store holding this mailbox; NULL (or empty) routes the mailbox
    #: as its domain (``domain.transport``).  PostfixAdmin 3.3 has no such
    #: column, and the ``mailhost_`` prefix keeps a future one from colliding
    #: (docs/cluster.md).  Read by examples/cluster/*/transport_maps.cf.
    mailhost_transport: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Alias(Base):
    """An alias: ``address`` (or ``@domain`` catch-all) → ``goto`` list."""

    __tablename__ = "alias"
    __table_args__ = (Index("alias_domain_idx", "domain"),)

    address: Mapped[str] = mapped_column(String(255), primary_key=True)
    goto: Mapped[str] = mapped_column(Text, nullable=False)
    domain: Mapped[str] = mapped_column(String(255), nullable=False)
    created: Mapped[datetime] = _created()
    modified: Mapped[datetime] = _modified()
    active: Mapped[bool] = _active()


class AliasDomain(Base):
    """Every address of ``alias_domain`` is delivered as the same local part of
    ``target_domain`` (PostfixAdmin ``alias_domain``)."""

    __tablename__ = "alias_domain"
    __table_args__ = (Index("alias_domain_target_idx", "target_domain"),)

    alias_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    target_domain: Mapped[str] = mapped_column(String(255), nullable=False)
    created: Mapped[datetime] = _created()
    modified: Mapped[datetime] = _modified()
    active: Mapped[bool] = _active()


class QuotaUsage(Base):
    """mailhost's cache of a mailbox's Maildir++ usage (``maildirsize`` sums),
    so a quota check at RCPT time need not scan the Maildir."""

    __tablename__ = "mailhost_quota_usage"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    messages: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    modified: Mapped[datetime] = _modified()


class DomainSettings(Base):
    """What mailhost keeps per domain beyond PostfixAdmin's columns: the quota a
    new mailbox gets when ``mailhost mailbox add`` is not given one (bytes,
    0 = unlimited).  PostfixAdmin keeps this in its PHP configuration instead."""

    __tablename__ = "mailhost_domain_settings"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    default_quota: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default="0"
    )
    modified: Mapped[datetime] = _modified()


class Log(Base):
    """PostfixAdmin's change log (``log``), shown by its "View Log" page: one
    row per change, ``action`` one of PostfixAdmin's action names."""

    __tablename__ = "log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    username: Mapped[str] = mapped_column(String(255), nullable=False)
    domain: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(255), nullable=False)
    data: Mapped[str] = mapped_column(Text, nullable=False)


#: The tables a PostfixAdmin database already has (adopted, never rewritten).
POSTFIXADMIN_TABLES = ("domain", "mailbox", "alias", "alias_domain")
#: Tables mailhost adds.
MAILHOST_TABLES = ("mailhost_domain_settings", "mailhost_quota_usage", "mailhost_added_by_0003")
