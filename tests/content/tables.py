"""The header/body check tables and messages of the content-inspection cases,
shared by the recorder (record_postfix_content.py, run against a real
Postfix 3.7.11) and the replay tests (test_content_matches_postfix.py).

Each case is one message whose Subject (or a body line) fires one rule.
"""

from __future__ import annotations

#: header_checks (regexp:): primary, non-MIME headers.
HEADER_CHECKS = r"""
/^Subject: reject default/ REJECT
/^Subject: reject text/ REJECT Go away, spammer
/^Subject: reject dsn/ REJECT 5.7.9 Custom code
/^Subject: reject temporary/ REJECT 4.7.2 Try later
/^Subject: reject bad dsn/ REJECT 2.0.0 Not an error code
/^Subject: discard text/ DISCARD spam, bye
/^Subject: discard plain/ DISCARD
/^Subject: hold text/ HOLD held for review
/^Subject: hold plain/ HOLD
/^X-Drop-Me:/ IGNORE
/^Subject: prepend header/ PREPEND X-Tag: prepended
/^Subject: replace header/ REPLACE Subject: replaced subject
/^Subject: redirect header/ REDIRECT carol@example.com
/^Subject: warn text/ WARN watch this
/^Subject: warn plain/ WARN
/^Subject: info text/ INFO for the record
/^Subject: info plain/ INFO
/^Subject: filter header/ FILTER discard:filtered by header
/^Subject: bcc header/ BCC dave@example.com
/^Subject: dunno/ DUNNO
/^Subject: ok action/ OK
/^Subject: strip header/ STRIP stripped it
/^Subject: pass header/ PASS trusted sender
/^Subject: folded.*continued here/ WARN folded header matched
/^Subject: unknown action/ FROB it
/^Subject: prepend bad/ PREPEND not a header
/^Subject: replace bad/ REPLACE not a header either
/^Subject: redirect bad/ REDIRECT nobody
/^Subject: filter bad/ FILTER nocolon
/^Subject: bcc bad/ BCC nobody
/^Received:.*for <dave@example\.com>/ WARN smtpd's Received header is inspected
/^Subject: hold then/ HOLD first hold
/^X-Second-Hold:/ HOLD second hold
/^X-After-Reject:/ WARN never seen after reject
/^X-After-Pass:/ WARN never seen after pass
/^X-Reject-Now:/ REJECT rejected after hold
/^X-Discard-Now:/ DISCARD discarded after hold
/^Subject: redirect then filter/ REDIRECT carol@example.com
/^X-Then-Filter:/ FILTER discard:after redirect
/^Content-Type:.*x-mime-check/ WARN header_checks saw a MIME header
/^Subject: nested/ WARN primary saw nested subject
/^X-Part-Header:/ WARN header_checks saw a part header
/^Subject: primary for mime/ INFO primary subject
"""

#: mime_header_checks (regexp:): MIME headers anywhere, and every header of
#: a multipart body part.
MIME_HEADER_CHECKS = r"""
/^Content-Type:.*x-mime-check/ WARN mime header seen
/^Content-Disposition:.*evil\.exe/ REJECT attachment not allowed
/^X-Part-Header:/ INFO part header in mime_header_checks
/^MIME-Version: 1\.0 \(mark\)/ INFO mime version marked
"""

#: nested_header_checks (regexp:): non-MIME headers of an attached message.
NESTED_HEADER_CHECKS = r"""
/^Subject: nested/ WARN nested subject seen
/^X-Nested-Hold:/ HOLD nested hold
"""

#: body_checks (pcre:): body lines, MIME boundaries included.
BODY_CHECKS = r"""
/^reject this line$/ REJECT body says no
/^discard body/ DISCARD
/^hold body/ HOLD body hold
/^prepend body/ PREPEND inserted body line
/^replace body/ REPLACE replaced body line
/^ignore body/ IGNORE
/^warn body/ WARN body warning
/^redirect body/ REDIRECT carol@example.com
/^filter body/ FILTER discard:body filter
/^bcc body/ BCC dave@example.com
/^--mark-boundary/ WARN boundary seen
/^late line/ WARN late line seen
/^X-Part-Header:/ WARN body saw a part header
/^X-Nested-Body:/ INFO nested body header line
/^Subject: nested/ WARN body saw the nested subject
/^(?i)case insensitive flag/ WARN pcre inline flag
/^long line (x+)$/ WARN long line piece
"""

BODY_CHECKS_SIZE_LIMIT = 300

MAILBOXES = ("alice", "bob", "carol", "dave")


def message(subject: str, body: str = "hello\r\n", extra: str = "") -> str:
    """A small message with ``subject``, ``extra`` header lines and ``body``."""
    return (
        "From: Sender <s@client.test>\r\n"
        "To: alice@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"{extra}"
        "Message-ID: <content-case@client.test>\r\n"
        "\r\n"
        f"{body}"
    )


MULTIPART = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="mark-boundary"\r\n'

PART_BODY = (
    "preamble\r\n"
    "--mark-boundary\r\n"
    "Content-Type: text/plain; x-mime-check=1\r\n"
    "X-Part-Header: in a part\r\n"
    "\r\n"
    "part one text\r\n"
    "--mark-boundary\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: nested message\r\n"
    "X-Nested-Hold: no, only logged when nested\r\n"
    "Content-Type: text/plain; x-mime-check=2\r\n"
    "\r\n"
    "X-Nested-Body: this is body text\r\n"
    "--mark-boundary--\r\n"
    "epilogue\r\n"
)

LATE_BODY = "".join(f"filler line {n:03d} {'.' * 40}\r\n" for n in range(8)) + "late line\r\n"

SECOND_PART_LATE = (
    "--mark-boundary\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n" + LATE_BODY + "--mark-boundary\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "late line in a new segment\r\n"
    "--mark-boundary--\r\n"
)

#: name → (message, recipients).  Every message goes from <s@client.test>.
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "header_reject_default": (message("reject default"), ("alice@example.com",)),
    "header_reject_text": (message("reject text"), ("alice@example.com", "bob@example.com")),
    "header_reject_dsn": (message("reject dsn"), ("alice@example.com",)),
    "header_reject_temporary": (message("reject temporary"), ("alice@example.com",)),
    "header_reject_bad_dsn": (message("reject bad dsn"), ("alice@example.com",)),
    "header_discard_text": (message("discard text"), ("alice@example.com",)),
    "header_discard_plain": (message("discard plain"), ("alice@example.com",)),
    "header_hold_text": (message("hold text"), ("alice@example.com",)),
    "header_hold_plain": (message("hold plain"), ("alice@example.com",)),
    "header_ignore": (message("ignore", extra="X-Drop-Me: yes\r\n\tand its fold\r\n"),
                      ("alice@example.com",)),
    "header_prepend": (message("prepend header"), ("alice@example.com",)),
    "header_replace": (message("replace header"), ("alice@example.com",)),
    "header_redirect": (message("redirect header"), ("alice@example.com", "bob@example.com")),
    "header_warn_text": (message("warn text"), ("alice@example.com",)),
    "header_warn_plain": (message("warn plain"), ("alice@example.com",)),
    "header_info_text": (message("info text"), ("alice@example.com",)),
    "header_info_plain": (message("info plain"), ("alice@example.com",)),
    "header_filter": (message("filter header"), ("alice@example.com",)),
    "header_bcc": (message("bcc header"), ("alice@example.com",)),
    "header_dunno": (message("dunno"), ("alice@example.com",)),
    "header_ok": (message("ok action"), ("alice@example.com",)),
    "header_strip": (message("strip header"), ("alice@example.com",)),
    "header_pass": (message("pass header", body="warn body after pass\r\n",
                            extra="X-After-Pass: 1\r\n"), ("alice@example.com",)),
    "header_folded": (message("folded\r\n\tcontinued here"), ("alice@example.com",)),
    "header_unknown_action": (message("unknown action"), ("alice@example.com",)),
    "header_prepend_bad": (message("prepend bad"), ("alice@example.com",)),
    "header_replace_bad": (message("replace bad"), ("alice@example.com",)),
    "header_redirect_bad": (message("redirect bad"), ("alice@example.com",)),
    "header_filter_bad": (message("filter bad"), ("alice@example.com",)),
    "header_bcc_bad": (message("bcc bad"), ("alice@example.com",)),
    "header_received": (message("received"), ("dave@example.com",)),
    "header_hold_twice": (message("hold then", extra="X-Second-Hold: 1\r\n"),
                          ("alice@example.com",)),
    "header_reject_stops_checks": (message("reject text", body="warn body\r\n",
                                           extra="X-After-Reject: 1\r\n"), ("alice@example.com",)),
    "header_reject_after_hold": (message("hold text", extra="X-Reject-Now: 1\r\n"),
                                 ("alice@example.com",)),
    "header_discard_after_hold": (message("hold text", extra="X-Discard-Now: 1\r\n"),
                                  ("alice@example.com",)),
    "header_redirect_then_filter": (message("redirect then filter",
                                            extra="X-Then-Filter: 1\r\n"), ("alice@example.com",)),
    "mime_header_distinctions": (message("primary for mime", body=PART_BODY, extra=MULTIPART),
                                 ("alice@example.com",)),
    "mime_primary_content_type": (message("mime content type", extra=(
        "MIME-Version: 1.0 (mark)\r\nContent-Type: text/plain; x-mime-check=0\r\n")),
        ("alice@example.com",)),
    "mime_part_reject": (message("attachment", extra=MULTIPART, body=(
        "--mark-boundary\r\n"
        "Content-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="evil.exe"\r\n'
        "\r\n"
        "TVqQAAMAAAAEAAAA\r\n"
        "--mark-boundary--\r\n")), ("alice@example.com",)),
    "body_reject": (message("body", body="first\r\nreject this line\r\nlast\r\n"),
                    ("alice@example.com",)),
    "body_discard": (message("body", body="discard body now\r\n"), ("alice@example.com",)),
    "body_hold": (message("body", body="hold body now\r\n"), ("alice@example.com",)),
    "body_prepend": (message("body", body="one\r\nprepend body here\r\ntwo\r\n"),
                     ("alice@example.com",)),
    "body_replace": (message("body", body="one\r\nreplace body here\r\ntwo\r\n"),
                     ("alice@example.com",)),
    "body_ignore": (message("body", body="one\r\nignore body here\r\ntwo\r\n"),
                    ("alice@example.com",)),
    "body_warn": (message("body", body="warn body here\r\n"), ("alice@example.com",)),
    "body_redirect": (message("body", body="redirect body\r\n"),
                      ("alice@example.com", "bob@example.com")),
    "body_filter": (message("body", body="filter body\r\n"), ("alice@example.com",)),
    "body_bcc": (message("body", body="bcc body\r\n"), ("alice@example.com",)),
    "body_pcre_flags": (message("body", body="CASE INSENSITIVE FLAG here\r\n"),
                        ("alice@example.com",)),
    "body_size_limit": (message("body", body=LATE_BODY), ("alice@example.com",)),
    "body_size_limit_per_segment": (message("segments", extra=MULTIPART, body=SECOND_PART_LATE),
                                    ("alice@example.com",)),
    "body_long_line": (message("body", body="long line " + "x" * 2100 + "\r\n"),
                       ("alice@example.com",)),
    "body_without_mime": (message("no mime", body=(
        "--mark-boundary\r\nX-Part-Header: not a part without MIME headers\r\n\r\nwarn body\r\n"
    )), ("alice@example.com",)),
}  # fmt: skip

#: Cases submitted with sendmail (pickup) instead of SMTP: name → (message, recipients).
LOCAL_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "local_warn": (message("warn text"), ("alice@example.com",)),
    "local_hold": (message("hold text"), ("alice@example.com",)),
    "local_reject": (message("reject text"), ("alice@example.com",)),
    "local_body_discard": (message("body", body="discard body now\r\n"), ("alice@example.com",)),
}

#: main.cf content_filter of the second instance, and the cases sent to it
#: (a plain message, and one whose FILTER action overrides content_filter).
CONTENT_FILTER = "discard:by content_filter"
CONTENT_FILTER_CASES = ("header_dunno", "header_filter", "header_redirect")
