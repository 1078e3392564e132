"""The sendmail cases replayed against Postfix 3.7.11 (record_postfix_sendmail.py)
and against mailhost (test_sendmail_matches_postfix.py): one main.cf, one
list of (arguments, environment, standard input)."""

from __future__ import annotations

from dataclasses import dataclass, field

MYHOSTNAME = "mx.example.com"
MYDOMAIN = "example.com"

#: What both main.cf files share (the recorder adds the instance's paths).
MAIN_CF = f"""\
compatibility_level = 3.6
myhostname = {MYHOSTNAME}
mydomain = {MYDOMAIN}
myorigin = $mydomain
mydestination =
"""


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    stdin: str
    env: dict[str, str] = field(default_factory=dict)


CASES = (
    Case(
        "extract_to_cc_bcc_fullname_lone_dot",
        ("-t", "-F", "John Q. Public"),
        "To: alice@example.net, bob\nCc: Carol <carol@example.org>\n"
        "Bcc: dave@example.org\nSubject: t1\n\nhello\n.\nafter dot\n",
    ),
    Case(
        "extract_resent_only",
        ("-t",),
        "To: x@example.net\nResent-To: r1@example.net\nResent-Bcc: rb@example.net\n"
        "Subject: t2\n\nbody\n",
    ),
    Case(
        "extract_plus_command_line",
        ("-t", "extra@example.net"),
        "To: Some Body <some@example.net>,\n\tother@example.net\nSubject: t3\n\nbody\n",
    ),
    Case(
        "fullname_plain_sender_phrase",
        ("-F", "John Public", "-f", "Some One <some@example.net>", "bob"),
        "Subject: t6\n\nbody\n",
    ),
    Case(
        "dot_i_from_present_null_sender",
        ("-i", "-F", 'John (X) "Q" Public', "-f", "", "bob"),
        "From: me@x.example\nSubject: t7\n\nbody\n..dot\n.\nmore\n",
    ),
    Case(
        "oi_lone_dot_kept",
        ("-oi", "bob"),
        "Subject: t7b\n\nfirst\n.\nsecond\n",
    ),
    Case(
        "malformed_f_two_addresses",
        ("-f", "a@b.example, c@d.example", "bob"),
        "Subject: t8\n\nbody\n",
    ),
    Case(
        "null_sender_angle_env_name",
        ("-f", "<>", "bob"),
        "Subject: t9\n\nbody\n",
        {"NAME": "Env Name"},
    ),
    Case(
        "env_name_fullname",
        ("bob",),
        "Subject: t9b\n\nbody\n",
        {"NAME": "Env Name"},
    ),
    Case(
        "unqualified_sender_dashdash_recipient",
        ("-f", "x", "--", "-bob"),
        "Subject: t10\n\nbody\n",
    ),
    Case(
        "fullname_comma",
        ("-F", "Smith, John", "bob"),
        "Subject: t11\n\nbody\n",
    ),
    Case(
        "fullname_apostrophe",
        ("-F", "Pat O'Neil", "bob"),
        "Subject: t12\n\nbody\n",
    ),
    Case(
        "fullname_backslash_quote",
        ("-F", 'a\\b"c', "bob"),
        "Subject: t13\n\nbody\n",
    ),
    Case(
        "header_addresses_qualified",
        ("bob",),
        "To: root, Named <user2>, alice@example.net\nCc: carol\nSubject: t14\n\nbody\n",
    ),
    Case(
        "no_headers_at_all",
        ("bob",),
        "just a body line\n",
    ),
    Case(
        "date_and_message_id_kept",
        ("bob",),
        "Date: Mon, 30 Nov 2026 10:00:00 +0000\nMessage-ID: <kept@x.example>\n"
        "Subject: t15\n\nbody\n",
    ),
    Case(
        "crlf_input",
        ("bob",),
        "Subject: t16\r\n\r\nline one\r\nline two\r\n",
    ),
    Case(
        "no_trailing_newline",
        ("bob",),
        "Subject: t17\n\nlast line without newline",
    ),
    Case(
        "bcc_without_t",
        ("bob",),
        "To: alice@example.net\nBcc: hidden@example.net\nSubject: t19\n\nbody\n",
    ),
    Case(
        "group_and_comments_t",
        ("-t",),
        "To: undisclosed-recipients:;\nCc: bob (Bob B), friends: carol@example.org, dave;\n"
        "Subject: t20\n\nbody\n",
    ),
    Case(
        "argument_is_an_address_list",
        ("alice@example.net, Named <bob>",),
        "Subject: t21\n\nbody\n",
    ),
    Case(
        "from_header_unqualified",
        ("bob",),
        "From: root (Charlie Root)\nReply-To: carol\nSubject: t22\n\nbody\n",
    ),
    Case(
        "empty_fullname",
        ("-F", "", "bob"),
        "Subject: t23\n\nbody\n",
    ),
    Case(
        "ignored_options_clustered_attached",
        (
            "-oem",
            "-odb",
            "-om",
            "-o8",
            "-U",
            "-G",
            "-m",
            "-x",
            "-c",
            "-L",
            "label",
            "-h",
            "17",
            "-Am",
            "-O",
            "x=y",
            "-p",
            "smtp:x",
            "-e",
            "x",
            "-XV",
            "-bm",
            "-ti",
            "-fsomeone@example.net",
        ),
        "To: alice@example.net\nSubject: t24\n\nbody\n.\nafter\n",
    ),
    Case(
        "bad_n_and_r_values_warn",
        ("-N", "bogus", "-R", "bogus", "-N", "never,success", "bob"),
        "Subject: t26\n\nbody\n",
    ),
    Case(
        "resent_from_present",
        ("-t",),
        "Resent-From: boss@example.net\nResent-To: r1@example.net\nSubject: t25\n\nbody\n",
    ),
    Case("option_after_recipient_is_a_recipient", ("bob", "-f"), "Subject: e8\n\nbody\n"),
    Case(
        "body_starts_without_blank_line",
        ("bob",),
        "Subject: t18\nnot a header line\nmore\n",
    ),
)

#: Cases that are refused before anything is queued.
ERROR_CASES = (
    Case("extract_no_recipients", ("-t",), "Subject: e1\n\nbody\n"),
    Case("no_recipients", (), "Subject: e2\n\nbody\n"),
    Case("invalid_option", ("-Z", "bob"), "Subject: e3\n\nbody\n"),
    Case("t_with_bv", ("-t", "-bv"), "To: a@example.net\n\nbody\n"),
    Case("n_option_refused", ("-n", "bob"), "Subject: e4\n\nbody\n"),
    Case("bad_b_value", ("-B", "bogus", "bob"), "Subject: e5\n\nbody\n"),
    Case("x_option_with_file", ("-X", "/dev/null", "bob"), "Subject: e6\n\nbody\n"),
    Case("unsupported_b_mode", ("-bz", "bob"), "Subject: e7\n\nbody\n"),
    Case("flush_with_recipient", ("-q", "bob"), ""),
    Case("flush_id_with_recipient", ("-qIABC", "bob"), ""),
    Case("flush_site_with_recipient", ("-qRsite", "bob"), ""),
    Case("q_s_not_implemented", ("-qSx",), ""),
    Case("missing_option_argument_at_end", ("-f",), "Subject: e9\n\nbody\n"),
)

#: ``sendmail -bs``: an SMTP dialogue on standard input/output.
BS_CASES = (
    Case(
        "bs_session",
        ("-bs",),
        "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob>\r\n"
        "RCPT TO:<x@remote.example>\r\nDATA\r\nSubject: bs\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    ),
)
