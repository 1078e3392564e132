"""main.cf parsing and postconf output; every expected value was produced by
Postfix 3.7.11's postconf on the same main.cf (spec 1.7 and our own runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailhost.config import load_config
from mailhost.config.maincf import parse_assignments
from mailhost.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "main.cf").write_text(text, encoding="utf-8")
    return tmp_path


def test_continuation_keeps_whitespace_display_collapses_matches_postfix(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    d = write(tmp_path, "mydestination = $myhostname,\n    localhost.$mydomain\n\t  localhost   \n")
    assert load_config(d).raw("mydestination") == "$myhostname,    localhost.$mydomain\t  localhost"
    result = mailhost_cli("postconf", "-c", str(d), "mydestination")
    assert result.stdout == "mydestination = $myhostname, localhost.$mydomain localhost\n"


def test_comment_between_continuations_is_skipped_matches_postfix(tmp_path: Path) -> None:
    d = write(tmp_path, "mydestination = $myhostname,\n# comment\n    localhost\n")
    assert load_config(d).raw("mydestination") == "$myhostname,    localhost"


def test_hash_mid_line_is_text_matches_postfix(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "myorigin = bar # x\n")).raw("myorigin") == "bar # x"


def test_value_may_contain_equals_and_be_empty_matches_postfix(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "relayhost =\nsmtpd_banner = a=b\n"))
    assert config.raw("relayhost") == ""
    assert config.raw("smtpd_banner") == "a=b"


def test_missing_equals_is_fatal_matches_postfix() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_assignments("my origin = x\n", "/etc/x/main.cf")
    assert str(exc.value) == (
        "/etc/x/main.cf, line 1: missing '=' after attribute name: \"my origin = x\""
    )


def test_missing_name_is_fatal_matches_postfix() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_assignments("\n=x\n", "main.cf")
    assert str(exc.value) == 'main.cf, line 2: missing attribute name: "=x"'


def test_leading_whitespace_first_line_warns_and_is_ignored_matches_postfix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write(tmp_path, "  myorigin = x\n"))
    assert "myorigin" not in config.explicit
    assert (
        f'{tmp_path}/main.cf: logical line must not start with whitespace: "  myorigin = x"'
        in caplog.messages
    )


def test_duplicate_last_wins_with_warning_matches_postfix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "\n" * 10 + "myorigin = a\n\nmyorigin = b\n"
    assert load_config(write(tmp_path, text)).raw("myorigin") == "b"
    assert f"{tmp_path}/main.cf, line 13: overriding earlier entry: myorigin=a" in caplog.messages


@pytest.mark.parametrize(
    ("banner", "expected"),
    [  # each expected value: `postconf -c DIR -xh smtpd_banner` of Postfix 3.7.11
        (
            "${myhostname?yes}|${nope?yes}|${nope:no}|$(myhostname)|$$x|${myhostname:no}",
            "yes||no|mx1.example.com|$x|",
        ),
        (
            "${myhostname?{set}:{unset}} ${nothere?{set}:{unset}} ${empty?{set}:{unset}}",
            "set unset unset",
        ),
        (
            "${{$compatibility_level} <level {2} ? {old} : {new}} ${{3} < {10}?{num}:{lex}} "
            "${{abc} == {abc}?{eq}:{ne}}",
            "new num eq",
        ),
        ("${myhostname? x y }|${nope: a }|${myhostname?{ a b }}|", "x y | a | a b |"),
        (
            "${{10} < {9}?{num}:{lex}} ${{b} < {a}?{t}:{f}} ${{3.6} <level {3.10}?{t}:{f}}",
            "lex f t",
        ),
        (
            "[$myhostname.x] $myhostname_x ${myhostname}${myhostname}",
            "[mx1.example.com.x] mx1.example.commx1.example.com",
        ),
        ("${{a}=={a}?{1}:{2}}|${{ a } == {a}?{1}:{2}}", "1|2"),
        ("${myhostname?{x}}${nope?{x}:y z}", "xy z"),
    ],
)
def test_expansion_matches_postfix(
    tmp_path: Path, mailhost_cli: Any, banner: str, expected: str
) -> None:
    d = write(
        tmp_path,
        f"myhostname = mx1.example.com\nempty =\ncompatibility_level = 3.6\nsmtpd_banner = {banner}\n",
    )
    result = mailhost_cli("postconf", "-c", str(d), "-xh", "smtpd_banner")
    assert result.stdout == expected + "\n"
    assert result.exit_code == 0


def test_macro_nesting_is_fatal_matches_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    d = write(tmp_path, "myhostname = $mydomain\nmydomain = $myhostname\n")
    result = mailhost_cli("postconf", "-c", str(d), "-x", "myhostname")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        'postconf: warning: unreasonable macro call nesting: "myhostname"\n'
        "postconf: fatal: macro processing error\n"
    )


def test_truncated_reference_is_fatal_matches_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    d = write(tmp_path, "myorigin = ${mydomain\n")
    result = mailhost_cli("postconf", "-c", str(d), "-x", "myorigin")
    assert result.exit_code == 1
    assert 'postconf: warning: truncated macro reference: "${mydomain"\n' in result.stderr
    assert result.stderr.endswith("postconf: fatal: macro processing error\n")


def test_unknown_parameter_warns_exit_zero_matches_postfix(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    result = mailhost_cli("postconf", "-c", str(write(tmp_path, "")), "nosuchparam")
    assert (result.stdout, result.stderr, result.exit_code) == (
        "",
        "postconf: warning: nosuchparam: unknown parameter\n",
        0,
    )


def test_postconf_n_lists_explicit_and_config_directory_matches_postfix(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    d = write(
        tmp_path,
        "myhostname = mx1.example.com\nmydestination = $myhostname,\n    localhost.$mydomain\n"
        "\t  localhost   \nrelayhost =\nfoo = bar\nmyorigin = bar # x\n",
    )
    result = mailhost_cli("postconf", "-c", str(d), "-n")
    assert result.stdout == (
        f"config_directory = {d}\n"
        "mydestination = $myhostname, localhost.$mydomain localhost\n"
        "myhostname = mx1.example.com\n"
        "myorigin = bar # x\n"
        "relayhost =\n"
    )
    assert result.stderr == f"postconf: warning: {d}/main.cf: unused parameter: foo=bar\n"


def test_postconf_h_and_H_match_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    d = write(tmp_path, "myhostname = mx.example.com\n")
    assert mailhost_cli("postconf", "-c", str(d), "-h", "myorigin").stdout == "$myhostname\n"
    assert mailhost_cli("postconf", "-c", str(d), "-hx", "myorigin").stdout == "mx.example.com\n"
    both = mailhost_cli("postconf", "-c", str(d), "-H", "myorigin", "mydomain")
    assert both.stdout == "myorigin\nmydomain\n"


def test_postconf_df_folds_like_postfix(mailhost_cli: Any, tmp_path: Path) -> None:
    result = mailhost_cli("postconf", "-c", str(write(tmp_path, "")), "-df",
                          "smtpd_relay_restrictions", "alias_maps")  # fmt: skip
    assert result.stdout == (
        "smtpd_relay_restrictions = ${{$compatibility_level} <level {1} ? {} :\n"
        "    {permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}\n"
        "alias_maps = hash:/etc/aliases, nis:mail.aliases\n"
    )


def test_postconf_f_folds_long_values_like_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    d = write(
        tmp_path,
        "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, "
        "reject_unauth_destination, check_recipient_access hash:/etc/postfix/a, "
        "reject_unlisted_recipient, reject\n",
    )
    assert mailhost_cli("postconf", "-c", str(d), "-f", "smtpd_recipient_restrictions").stdout == (
        "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
        "    reject_unauth_destination, check_recipient_access hash:/etc/postfix/a,\n"
        "    reject_unlisted_recipient, reject\n"
    )


def test_d_and_n_together_is_a_usage_error_like_postfix(tmp_path: Path, mailhost_cli: Any) -> None:
    result = mailhost_cli("postconf", "-c", str(write(tmp_path, "")), "-d", "-n")
    assert result.stderr == "postconf: fatal: specify one of -d -n\n"
    assert result.exit_code != 0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "disable_vrfy_command = maybe\n",
            "bad boolean configuration: disable_vrfy_command = maybe",
        ),
        ("message_size_limit = abc\n", "bad numerical configuration: message_size_limit = abc"),
        (
            "maximal_queue_lifetime = 3x\n",
            "parameter maximal_queue_lifetime: bad time value or unit: 3x",
        ),
    ],
)
def test_bad_typed_values_are_fatal_with_postfix_text(
    tmp_path: Path, text: str, error: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert str(exc.value) == error


def test_time_units_match_postfix(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "maximal_queue_lifetime = 2\nminimal_backoff_time = 90m\n"
                                         "disable_vrfy_command = YES\nqueue_run_delay = 5days\n"))  # fmt: skip
    assert config.get_time("maximal_queue_lifetime") == 2 * 86400  # default unit: days
    assert config.get_time("minimal_backoff_time") == 5400
    assert config.get_time("queue_run_delay") == 5 * 86400  # only the first unit letter counts
    assert config.get_bool("disable_vrfy_command") is True


def test_level_3_6_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.get("relay_domains") == ""
    assert config.get_list("smtpd_relay_restrictions") == [
        "permit_mynetworks",
        "permit_sasl_authenticated",
        "defer_unauth_destination",
    ]
    assert config.get_bool("smtputf8_enable") is True
    assert config.get_bool("append_dot_mydomain") is False


def test_explicit_missing_config_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file or directory"):
        load_config(tmp_path / "nope")


def test_overrides_make_a_new_config(tmp_path: Path) -> None:
    base = load_config(write(tmp_path, "smtpd_tls_security_level = may\n"))
    submission = base.with_overrides({"smtpd_tls_security_level": "encrypt"})
    assert base.get("smtpd_tls_security_level") == "may"
    assert submission.get("smtpd_tls_security_level") == "encrypt"


def test_postconf_n_lists_restriction_class_without_warning_matches_postfix(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    # postconf 3.7.11 -n on this main.cf: the class is listed, only foo_bar warns.
    d = write(
        tmp_path,
        "smtpd_restriction_classes = spam_lovers\nspam_lovers = permit\nfoo_bar = 1\n",
    )
    result = mailhost_cli("postconf", "-c", str(d), "-n")
    assert result.stdout == (
        f"config_directory = {d}\nsmtpd_restriction_classes = spam_lovers\nspam_lovers = permit\n"
    )
    assert result.stderr == f"postconf: warning: {d}/main.cf: unused parameter: foo_bar=1\n"
