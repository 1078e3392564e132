"""The RCPT TO quota check in-process, with real (inline/texthash) tables and
real maildirs: who is judged, with which size, which reply; and the quota
settings' parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.config import load_config
from mailhost.errors import ConfigError
from mailhost.quota.maildirsize import FILENAME, QuotaLimits
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.quota.settings import QuotaConfig, parse_refusal
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.tables.registry import TableRegistry
from tests.support.maincf import main_cf


def site_main_cf(directory: Path) -> str:
    return main_cf(
        myhostname="mx.example.com",
        mydestination="",
        alias_maps="",
        virtual_mailbox_domains="example.com, lmtp.example",
        virtual_mailbox_base=directory / "vmail",
        virtual_mailbox_maps=(
            "inline:{bob@example.com=example.com/bob/, carol@example.com=example.com/carol/, "
            "frank@example.com=example.com/frank, lena@lmtp.example=lmtp/lena/}"
        ),
        virtual_alias_maps=f"texthash:{directory}/virtual",
        transport_maps="inline:{lmtp.example=lmtp:unix:private/dovecot-lmtp}",
        virtual_mailbox_limit_maps=(
            "inline:{bob@example.com=1000, carol@example.com=100000, frank@example.com=1, "
            "lena@lmtp.example=1}"
        ),
        nulldns_line=False,
    )


def full(maildir: Path, limit: int, used: int) -> None:
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / FILENAME).write_bytes(f"{limit}S\n{used} 1\n".encode())


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "virtual").write_text(
        "all@example.com bob@example.com, carol@example.com\n"
        "mbox@example.com frank@example.com, bob@example.com\n"
        "far@example.com bob@example.com, someone@elsewhere.test\n"
    )
    base = tmp_path / "vmail"
    (tmp_path / "main.cf").write_text(site_main_cf(tmp_path))
    full(base / "example.com" / "bob", 1000, 1000)
    full(base / "example.com" / "carol", 100000, 90000)
    full(base / "lmtp" / "lena", 1, 1)
    return tmp_path


def checker(site: Path, extra: str = "") -> RcptQuotaCheck:
    if extra:
        with (site / "main.cf").open("a") as f:
            f.write(extra)
    cfg = load_config(site)
    registry = TableRegistry.from_config(cfg)
    resolver = Resolver(ResolverSettings.from_config(cfg, registry))
    check = RcptQuotaCheck.from_config(cfg, registry, resolver)
    assert check is not None
    return check


async def test_full_mailbox_gets_quota_status_default_reply(site: Path) -> None:
    reply = await checker(site).check("bob@example.com")
    assert str(reply) == (
        "554 5.2.2 <bob@example.com>: Recipient address rejected: "
        "Quota exceeded (mailbox for user is full)"
    )


async def test_declared_size_against_room_left(site: Path) -> None:
    check = checker(site)
    assert await check.check("carol@example.com", 10000) is None
    assert await check.check("carol@example.com", 10001) is not None
    assert await check.check("carol@example.com") is None


async def test_only_all_full_fan_outs_are_refused(site: Path) -> None:
    check = checker(site)
    assert await check.check("all@example.com") is None
    assert await check.check("all@example.com", 20000) is not None
    # An mbox member or an off-site member is never judged here.
    assert await check.check("mbox@example.com") is None
    assert await check.check("far@example.com") is None


async def test_other_transports_enforce_their_own_quota(site: Path) -> None:
    assert await checker(site).check("lena@lmtp.example") is None


async def test_configured_replies(site: Path) -> None:
    check = checker(
        site,
        "mailhost_quota_status_overquota = 452 4.2.2 Mailbox is full\n"
        "mailhost_quota_status_toolarge = 552 Message is larger than the mailbox quota\n",
    )
    assert str(await check.check("bob@example.com")) == (
        "452 4.2.2 <bob@example.com>: Recipient address rejected: Mailbox is full"
    )
    assert str(await check.check("carol@example.com", 200000)) == (
        "552 5.2.2 <carol@example.com>: Recipient address rejected: "
        "Message is larger than the mailbox quota"
    )


async def test_grace_lets_the_last_message_in(site: Path) -> None:
    check = checker(site, "mailhost_quota_grace = 10%\n")
    assert await check.check("carol@example.com", 15000) is None
    assert await check.check("bob@example.com") is not None  # already at the limit


async def test_rcpt_check_never_writes_maildirsize(site: Path) -> None:
    md = site / "vmail" / "example.com" / "carol"
    (md / FILENAME).write_bytes(b"broken\nnot a delta\n")
    (md / "new" / "1.M1P1.h,S=400,W=410").write_bytes(b"x" * 400)
    check = checker(site)
    assert await check.check("carol@example.com", 99600) is None
    assert await check.check("carol@example.com", 99601) is not None
    assert (md / FILENAME).read_bytes() == b"broken\nnot a delta\n"


async def test_no_entry_uses_the_header_and_a_missing_file_is_summed(site: Path) -> None:
    check = checker(site, "virtual_mailbox_limit_maps = inline:{bob@example.com=5}\n")
    # carol has no entry: the limit of her maildirsize header applies.
    assert await check.check("carol@example.com", 10000) is None
    assert await check.check("carol@example.com", 10001) is not None
    (site / "vmail" / "example.com" / "bob" / FILENAME).unlink()
    assert await check.check("bob@example.com", 6) is not None
    assert not (site / "vmail" / "example.com" / "bob" / FILENAME).exists()


def test_quota_is_off_without_limit_maps(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("virtual_mailbox_limit_maps =\n")
    cfg = load_config(tmp_path)
    assert QuotaConfig.from_config(cfg, TableRegistry()) is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("mailhost_quota_grace = lots", "bad quota grace"),
        ("mailhost_quota_warning_thresholds = 80, 120", "bad quota warning threshold"),
        ("mailhost_quota_status_overquota = 250 Ok", "bad mailhost_quota_status_overquota"),
        ("mailhost_quota_status_toolarge = 552 4.2.2 x", "does not match code"),
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, setting: str, message: str) -> None:
    (tmp_path / "main.cf").write_text(f"virtual_mailbox_limit_maps = static:0\n{setting}\n")
    with pytest.raises(ConfigError, match=message):
        QuotaConfig.from_config(load_config(tmp_path), TableRegistry())


async def test_domain_cap_lookup(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(
        "virtual_mailbox_limit_maps = inline:{a@capped.test=5000, b@capped.test=0, "
        "c@free.test=7}\nmailhost_quota_domain_maps = inline:{capped.test=2000, free.test=0}\n"
    )
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    quota = QuotaConfig.from_config(cfg, registry)
    assert quota is not None
    search = ResolverSettings.from_config(cfg, registry).search
    assert await quota.limits_for("a@capped.test", search) == QuotaLimits(2000)
    assert await quota.limits_for("b@capped.test", search) == QuotaLimits(2000)
    assert await quota.limits_for("new@capped.test", search) == QuotaLimits(2000)
    assert await quota.limits_for("c@free.test", search) == QuotaLimits(7)
    assert await quota.limits_for("d@free.test", search) is None


@given(
    st.sampled_from(["4", "5"]),
    st.integers(min_value=0, max_value=99),
    st.text(alphabet="abc Mailbox full.()", min_size=1, max_size=30).filter(str.strip),
)
def test_parse_refusal_round_trip(cls: str, rest: int, text: str) -> None:
    code = f"{cls}{rest:02d}"
    parsed = parse_refusal("p", f"{code} {cls}.2.2 {text}")
    assert (parsed.code, parsed.status, parsed.text) == (int(code), f"{cls}.2.2", text.strip())
    bare = parse_refusal("p", f"{code} {text}")
    assert bare.status == f"{cls}.2.2"


@given(st.text(max_size=40))
def test_parse_refusal_raises_only_config_errors(text: str) -> None:
    try:
        parsed = parse_refusal("p", text)
    except ConfigError:
        return
    assert 400 <= parsed.code < 600
