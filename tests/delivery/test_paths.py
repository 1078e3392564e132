"""virtual_mailbox_maps results → paths below virtual_mailbox_base; values
that would leave the base are refused (deferred 4.3.5), never written."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhost.delivery.paths import check_mailbox_base, mailbox_path
from mailhost.delivery.status import DeliveryError
from mailhost.errors import ConfigError


def test_trailing_slash_means_maildir(tmp_path):
    box = mailbox_path(tmp_path, "example.com/bob/")
    assert box.maildir
    assert box.kind == "maildir"
    assert box.path == tmp_path.resolve() / "example.com/bob"


def test_no_trailing_slash_means_mbox(tmp_path):
    box = mailbox_path(tmp_path, "example.com/frank")
    assert not box.maildir
    assert box.kind == "mailbox"
    assert box.path == tmp_path.resolve() / "example.com/frank"


@pytest.mark.parametrize("base", ["", "var/vmail", "./vmail"])
def test_relative_or_empty_base_is_fatal_with_postfix_text(base):
    with pytest.raises(ConfigError) as info:
        check_mailbox_base(base)
    assert str(info.value) == f"do not specify relative pathname: virtual_mailbox_base = {base}"


@pytest.mark.parametrize(
    "value",
    [
        "/etc/",
        "/etc/passwd",
        "../outside/",
        "example.com/../../outside/",
        "example.com/bob/../../../etc/",
        "..",
        "/",
        "./",
        "",
        "   ",
        "a\0b/",
    ],
)
def test_traversal_values_are_refused_and_logged(tmp_path, caplog, value):
    base = tmp_path / "vmail"
    base.mkdir()
    with caplog.at_level(logging.WARNING, logger="mailhost"), pytest.raises(DeliveryError) as info:
        mailbox_path(base, value, "bob@example.com")
    assert info.value.dsn == "4.3.5"
    assert info.value.text == "mail system configuration error"
    assert info.value.status.deferred
    assert any("bob@example.com" in r.getMessage() for r in caplog.records)


def test_symlinks_are_left_to_the_delivery_that_never_follows_them(tmp_path):
    # Judged by name here, a link could be swapped in after the check; the
    # delivery walks below the opened base instead (tests/delivery/test_symlinks.py).
    base = tmp_path / "vmail"
    (base / "example.com").mkdir(parents=True)
    os.symlink(tmp_path, base / "example.com" / "evil")
    box = mailbox_path(base, "example.com/evil/")
    assert (box.path, box.base) == (base / "example.com/evil", base)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["..", ".", "a", "b", "", "/", "x.."]), max_size=8))
def test_any_value_stays_below_the_base_or_is_refused(tmp_path, parts):
    base = tmp_path / "vmail"
    base.mkdir(exist_ok=True)
    value = "/".join(parts)
    try:
        box = mailbox_path(base, value)
    except DeliveryError:
        return
    resolved = Path(os.path.realpath(box.path))
    assert base.resolve() in resolved.parents
