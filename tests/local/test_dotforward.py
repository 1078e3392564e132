"""``.forward`` files: forward_path expansion (pure) and the files local(8)
ignores, through the queue manager."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery.dotforward import expand_forward_path
from mailhost.qmgr.local import FORWARD_FILTER
from tests.local.site import ME, LocalSite
from tests.qmgr.helpers import captured_log

DEFAULT = "$home/.forward${recipient_delimiter}${extension}, $home/.forward"
ME_NAME = pwd.getpwuid(ME).pw_name


def attrs(**changes: str) -> dict[str, str]:
    base = {
        "user": "alice", "home": "/home/alice", "shell": "/bin/sh",
        "recipient": "alice@example.org", "extension": "", "domain": "example.org",
        "local": "alice", "recipient_delimiter": "",
    }  # fmt: skip
    base.update(changes)
    return base


def test_default_forward_path_without_extension() -> None:
    assert expand_forward_path(DEFAULT, attrs(), FORWARD_FILTER) == ["/home/alice/.forward"]


def test_default_forward_path_with_extension() -> None:
    found = expand_forward_path(
        DEFAULT, attrs(extension="list", recipient_delimiter="+"), FORWARD_FILTER
    )
    assert found == ["/home/alice/.forward+list", "/home/alice/.forward"]


def test_conditional_forms_and_unknown_names() -> None:
    path = "/var/forward/$user${extension?/$extension}, /x/$nosuch, /y/${extension:plain}"
    assert expand_forward_path(path, attrs(), FORWARD_FILTER) == [
        "/var/forward/alice",
        "/y/plain",
    ]


def test_attribute_values_are_filtered() -> None:
    assert expand_forward_path("/f/$user", attrs(user="a b;c"), FORWARD_FILTER) == ["/f/a_b_c"]


@given(st.text(max_size=20), st.text(max_size=10))
def test_expanded_attributes_only_hold_filter_characters(user: str, extension: str) -> None:
    for path in expand_forward_path(
        "/f/$user/${extension}", attrs(user=user, extension=extension), FORWARD_FILTER
    ):
        assert all(ch in FORWARD_FILTER for ch in path)


def _site(site_dir: Path, text: str) -> LocalSite:
    (site_dir / "forward").mkdir()
    (site_dir / "forward" / ME_NAME).write_text(text)
    return LocalSite(site_dir, extra=f"forward_path = {site_dir}/forward/$user\n")


async def test_forward_file_with_self_reference_and_file(site_dir: Path) -> None:
    site = _site(site_dir, f"# keep a copy\n\\{ME_NAME}, {site_dir}/copy\n")
    await site.enqueue(f"{ME_NAME}@localhost")
    with captured_log() as log:
        await site.run()
    assert "status=sent (delivered to mailbox)" in log.text()
    assert f"status=sent (delivered to file: {site_dir}/copy)" in log.text()
    assert (site_dir / "copy").read_bytes().startswith(b"From s@client.test  ")


async def test_empty_forward_file_delivers_to_mailbox(site_dir: Path) -> None:
    site = _site(site_dir, "# nothing\n")
    await site.enqueue(f"{ME_NAME}@localhost")
    await site.run()
    assert b"Subject: hello" in site.mailbox(ME_NAME)


async def test_world_writable_forward_file_is_ignored(site_dir: Path) -> None:
    site = _site(site_dir, f"{site_dir}/copy\n")
    path = site_dir / "forward" / ME_NAME
    path.chmod(0o666)
    await site.enqueue(f"{ME_NAME}@localhost")
    with captured_log() as log:
        await site.run()
    assert f"warning: file {path} is world writable" in log.text()
    assert not (site_dir / "copy").exists()
    assert b"Subject: hello" in site.mailbox(ME_NAME)


@pytest.mark.skipif(ME != 0, reason="needs root to give the file away")
async def test_forward_file_of_another_owner_is_ignored(site_dir: Path) -> None:
    site = _site(site_dir, f"{site_dir}/copy\n")
    path = site_dir / "forward" / ME_NAME
    os.chown(path, 65534, 65534)
    await site.enqueue(f"{ME_NAME}@localhost")
    with captured_log() as log:
        await site.run()
    assert f"warning: file {path} has bad owner uid 65534" in log.text()
    assert b"Subject: hello" in site.mailbox(ME_NAME)


async def test_commands_in_forward_gated_by_allow_mail_to_commands(site_dir: Path) -> None:
    site = _site(site_dir, "|true\n")
    (site_dir / "main.cf").write_text(
        (site_dir / "main.cf").read_text() + "allow_mail_to_commands = alias\n"
    )
    await site.enqueue(f"{ME_NAME}@localhost")
    with captured_log() as log:
        await site.run()
    assert "dsn=5.7.1, status=bounced (mail to command is restricted)" in log.text()


@given(st.text(alphabet="$ab{}()?:/", max_size=30))
def test_forward_path_expansion_never_fails(element: str) -> None:
    for path in expand_forward_path(element, attrs(extension="x"), FORWARD_FILTER):
        assert isinstance(path, str)
