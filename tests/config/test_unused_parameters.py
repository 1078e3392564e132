"""``mailhost serve``'s start-up warnings about settings it will not act on,
against postconf 3.7.11's (tests/smtpd/postfix_caps.json, "postconf"):
names nobody uses are ``unused parameter: NAME=VALUE`` in main.cf and in
master.cf, names used through ``$name`` in main.cf or master.cf ``-o``
values or listed in smtpd_restriction_classes are not, and names Postfix
knows that mailhost does not implement get their own line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailhost.config import Config
from mailhost.config.maincf import parse_assignments
from mailhost.config.mastercf import parse_master_cf
from mailhost.config.params import BY_NAME
from mailhost.config.unused import is_postfix_parameter, unused_settings
from tests.smtpd.record_postfix_caps import POSTCONF_MAIN, POSTCONF_MASTER
from tests.support.postfix_lab import services

RECORDED = json.loads((Path(__file__).parents[1] / "smtpd" / "postfix_caps.json").read_text())
CONFIG = Path("/CONFIG")


def parse_main_cf(text: str) -> dict[str, str]:
    return {a.name: a.value for a in parse_assignments(text, "main.cf")}


def warnings(main_cf: str, master_cf: str) -> list[str]:
    cfg = Config(CONFIG, parse_main_cf(main_cf))
    entries = parse_master_cf(master_cf, str(CONFIG / "master.cf"))
    return [item.message() for item in unused_settings(cfg, entries, CONFIG / "master.cf")]


@pytest.mark.postfix
def test_unused_parameters_match_postconf() -> None:
    got = warnings(POSTCONF_MAIN, POSTCONF_MASTER + services())
    unused = [w for w in got if "unused parameter" in w]
    expected = [
        line.removeprefix("postconf: warning: ").replace("CONFIG", str(CONFIG))
        for line in RECORDED["postconf"]["stderr"]
    ]
    assert unused == expected


def test_postfix_parameters_mailhost_lacks_are_named() -> None:
    # postscreen is a Postfix daemon mailhost does not run: its parameters
    # are Postfix's, and not implemented here.
    main_cf = POSTCONF_MAIN + "postscreen_greet_wait = 6s\n"
    got = warnings(main_cf, POSTCONF_MASTER + services())
    main = parse_main_cf(main_cf)
    lacking = [n for n in main if n not in BY_NAME and is_postfix_parameter(n, [])]
    assert lacking == ["postscreen_greet_wait"]
    assert [w for w in got if "not implemented" in w] == [
        f"{CONFIG}/main.cf: parameter not implemented by mailhost: {name}" for name in lacking
    ]


def test_qmqpd_setting_is_not_implemented_and_master_cf_overrides_too() -> None:
    got = warnings(
        "qmqpd_timeout = 10s\n",
        "smtp inet n - n - - smtpd -o qmqpd_error_delay=1s -o smtpd_banner=x -o zzz=1\n",
    )
    assert got == [
        f"{CONFIG}/main.cf: parameter not implemented by mailhost: qmqpd_timeout",
        f"{CONFIG}/master.cf: parameter not implemented by mailhost: qmqpd_error_delay",
        f"{CONFIG}/master.cf: unused parameter: zzz=1",
    ]


def test_per_transport_names_follow_master_cf_services() -> None:
    assert is_postfix_parameter("maildrop_destination_recipient_limit", ["maildrop"])
    assert not is_postfix_parameter("maildrop_destination_recipient_limit", ["smtp"])
    assert not is_postfix_parameter("maildrop_nonsense", ["maildrop"])


def test_debian_main_cf_is_quiet() -> None:
    # debian_main.cf: /usr/share/postfix/main.cf.debian of postfix 3.7.11, what
    # Debian's postinst writes main.cf from.
    main = Path(__file__).with_name("debian_main.cf").read_text()
    master = Path(__file__).with_name("debian_master.cf").read_text()
    assert warnings(main, master) == []
