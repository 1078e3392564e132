"""``cidr:`` lookup cases whose expected answers were recorded from Postfix
3.7.11's own ``postmap -q`` on the same files (cidr_table(5)).

``record_postfix_cidr.py`` writes ``postfix_cidr.json``;
``test_cidr_matches_postfix.py`` compares ``mailhost postmap -q`` with it.
Paths in Postfix's messages are stored with ``{dir}`` for the table directory.
"""

from __future__ import annotations

# One rule a line, as in the files.
# fmt: off
SOURCES = {
    # Plain rules, first match wins; brackets; IPv6; continuation lines.
    "main.cidr": (
        "# cidr_table(5): the first matching network wins\n"
        "192.168.1.1 exact-host\n"
        "192.168.1.0/24 lan\n"
        "192.168.0.0/16 wide\n"
        "10.0.0.0/8 ten  with   inner   spaces  \t \n"
        "[172.16.5.0]/24 bracket-then-len\n"
        "[172.16.6.0/24] bracket-whole\n"
        "[172.16.7.7] bracket-host\n"
        "2001:db8:1::/48 v6-specific\n"
        "2001:DB8::/32 v6-doc\n"
        "[2001:db8:ffff::1] shadowed-by-v6-doc\n"
        "[fe80::]/10 link-local\n"
        "::ffff:198.51.100.0/120 v4-mapped\n"
        "198.51.100.0/25 v4-half\n"
        "  # an indented comment\n"
        "203.0.113.0/24 multi\n"
        "  line\n"
        "# a comment between a line and its continuation\n"
        "\tvalue\n"
        "0.0.0.0/32 zero-host\n"
        "1.2.3.0/288 prefix-288-is-32\n"
        "1:2:3:4:5:6:7::/128 trailing-double-colon\n"
        "::1.2.3.4 v4-compatible\n"
        "100.64.0.0/0010 leading-zero-prefix\n"
    ),
    # Negation: addresses of the same family outside the network.
    "negate.cidr": (
        "!!198.51.100.0/24 double-negation\n"
        "!192.0.2.0/24 not-test-net-1\n"
        "! 2001:db8::/32 not-v6-doc\n"
    ),
    # Blocks: nested, negated, case-insensitive keywords, mixed families.
    "blocks.cidr": (
        "if 10.0.0.0/8\n"
        "if !10.1.0.0/16\n"
        "10.0.0.0/9 ten-low-not-ten-one\n"
        "endif\n"
        "10.1.2.0/24 ten-one-two\n"
        "IF ::/0\n"
        "10.0.0.0/8 never-v4-inside-v6-block\n"
        "EndIf\n"
        "endif\n"
        "If [2001:db8::]/32\n"
        "  # a comment inside a block\n"
        "2001:db8::/48 v6-in-block\n"
        "endif\n"
        "if ! ! 192.0.2.0/24\n"
        "192.0.0.0/8 in-double-negated-block\n"
        "endif   \n"
        "10.1.0.0/16 after-blocks\n"
        "192.0.2.0/24 test-net-1\n"
    ),
    # An IF without ENDIF hides everything after it from addresses outside it.
    "unclosed.cidr": (
        "1.1.1.1 before\n"
        "if 10.0.0.0/8\n"
        "10.0.0.1 inside\n"
        "if 10.1.0.0/16\n"
        "10.1.0.1 inner\n"
        "1.1.1.2 after-unclosed\n"
    ),
    # Catch-alls: each family's rule never matches the other family.
    "catchall.cidr": (
        "::/0 any-v6\n"
        "0.0.0.0/0 any-v4\n"
    ),
    # Every rule Postfix skips, each with its warning.
    "bad.cidr": (
        "   10.20.30.40 a line that starts with whitespace\n"
        "1.2.3.4/24 host-bits\n"
        "2001:db8::1/32 v6-host-bits\n"
        "::ffff:1.2.3.4/120 mapped-host-bits\n"
        "1.2.3.0/264 prefix-264-is-8\n"
        "1.2.3.0/33 too-long\n"
        "2001:db8::/129 v6-too-long\n"
        "1.2.3.0/99999999999999999999999 huge-prefix\n"
        "1.2.3.0/ empty-mask\n"
        "1.2.3.0/2x bad-mask\n"
        "1.2.3.0/-1 negative-mask\n"
        "1.2.3.0/24/8 double-slash\n"
        "[1.2.3.0/24]/8 bracket-and-slash\n"
        "1.2.3/24 three-octets\n"
        "01.2.3.0/24 leading-zero\n"
        "256.1.1.1 big-octet\n"
        "1.2.3.4.5 five-octets\n"
        "nonsense value\n"
        "[1.2.3.4 unclosed-bracket\n"
        "[1.2.3.4]x garbage\n"
        "[1.2.3.4]:25 port\n"
        "1::2:3:4:5:6:7:8 too-many-groups\n"
        "::1%lo scoped\n"
        "1:2:3:4:5:6:7:8/64/ trailing-slash\n"
        "1.2.3.9\n"
        "!\n"
        "! ! \n"
        "endif extra\n"
        "endif\n"
        "if\n"
        "if !\n"
        "if 1.2.3.0/24 extra\n"
        "ifx 1.2.3.4\n"
        "endifx\n"
        "1.2.3.8\tvalue-after-tab\n"
        "0.0.0.0/0 fallback\n"
    ),
    # CRLF line ends; a form feed starts a continuation line (C isspace).
    "control.cidr": (
        "1.2.3.4 crlf\r\n"
        "5.6.7.8 form\n"
        "\ffeed\n"
        "9.9.9.9 vertical\x0btab\n"
    ),
    "empty.cidr": "# nothing but a comment\n\n",
}
# fmt: on

#: (case id, table file, key)
CASES: list[tuple[str, str, str]] = [
    ("main-exact-host", "main.cidr", "192.168.1.1"),
    ("main-first-match-lan", "main.cidr", "192.168.1.2"),
    ("main-wider-network", "main.cidr", "192.168.2.1"),
    ("main-value-inner-spaces", "main.cidr", "10.9.8.7"),
    ("main-bracket-then-len", "main.cidr", "172.16.5.9"),
    ("main-bracket-whole", "main.cidr", "172.16.6.255"),
    ("main-bracket-host", "main.cidr", "172.16.7.7"),
    ("main-not-found", "main.cidr", "172.16.7.8"),
    ("main-v6-specific", "main.cidr", "2001:db8:1::5"),
    ("main-v6-uppercase-key", "main.cidr", "2001:DB8:2::1"),
    ("main-v6-full-form", "main.cidr", "2001:0db8:0000:0000:0000:0000:0000:0001"),
    ("main-v6-shadowed", "main.cidr", "2001:db8:ffff::1"),
    ("main-v6-link-local", "main.cidr", "fe80::1"),
    ("main-v6-scoped-key", "main.cidr", "fe80::1%lo"),
    ("main-v4-mapped-key", "main.cidr", "::ffff:198.51.100.7"),
    ("main-v4-key-skips-mapped-rule", "main.cidr", "198.51.100.7"),
    ("main-v4-outside-half", "main.cidr", "198.51.100.200"),
    ("main-continuation", "main.cidr", "203.0.113.9"),
    ("main-zero-host", "main.cidr", "0.0.0.0"),
    ("main-prefix-288", "main.cidr", "1.2.3.0"),
    ("main-prefix-288-other-host", "main.cidr", "1.2.3.1"),
    ("main-trailing-double-colon", "main.cidr", "1:2:3:4:5:6:7::"),
    ("main-v4-compatible", "main.cidr", "::102:304"),
    ("main-leading-zero-prefix", "main.cidr", "100.127.255.255"),
    ("main-key-empty", "main.cidr", ""),
    ("main-key-hostname", "main.cidr", "mail.example.com"),
    ("main-key-bracketed", "main.cidr", "[192.168.1.1]"),
    ("main-key-with-prefix", "main.cidr", "192.168.1.1/32"),
    ("main-key-leading-zero", "main.cidr", "192.168.001.1"),
    ("main-key-leading-space", "main.cidr", " 192.168.1.1"),
    ("main-key-trailing-dot", "main.cidr", "192.168.1.1."),
    ("main-key-three-octets", "main.cidr", "192.168.1"),
    ("main-key-hex-ipv4", "main.cidr", "0xc0.168.1.1"),
    ("main-key-triple-colon", "main.cidr", ":::1"),
    ("main-key-address-with-port", "main.cidr", "192.168.1.1:25"),
    ("negate-double", "negate.cidr", "198.51.100.7"),
    ("negate-inside", "negate.cidr", "192.0.2.1"),
    ("negate-outside", "negate.cidr", "10.0.0.1"),
    ("negate-v6-outside", "negate.cidr", "::1"),
    ("negate-v6-inside", "negate.cidr", "2001:db8::1"),
    ("blocks-nested-negated", "blocks.cidr", "10.0.0.1"),
    ("blocks-inner-if-false", "blocks.cidr", "10.1.2.3"),
    ("blocks-v4-skips-v6-block", "blocks.cidr", "10.1.3.1"),
    ("blocks-v6-in-block", "blocks.cidr", "2001:db8::9"),
    ("blocks-v6-outside-block", "blocks.cidr", "2001:db9::1"),
    ("blocks-double-negated-if", "blocks.cidr", "192.1.1.1"),
    ("blocks-double-negated-if-inside", "blocks.cidr", "192.0.2.5"),
    ("blocks-outside-all", "blocks.cidr", "172.16.0.1"),
    ("unclosed-before", "unclosed.cidr", "1.1.1.1"),
    ("unclosed-inside", "unclosed.cidr", "10.0.0.1"),
    ("unclosed-inner", "unclosed.cidr", "10.1.0.1"),
    ("unclosed-after-hidden", "unclosed.cidr", "1.1.1.2"),
    ("unclosed-inner-miss", "unclosed.cidr", "10.2.0.1"),
    ("catchall-v4", "catchall.cidr", "203.0.113.1"),
    ("catchall-v4-broadcast", "catchall.cidr", "255.255.255.255"),
    ("catchall-v6", "catchall.cidr", "2001:db8::1"),
    ("catchall-v6-unspecified", "catchall.cidr", "::"),
    ("catchall-v4-mapped", "catchall.cidr", "::ffff:203.0.113.1"),
    ("catchall-not-an-address", "catchall.cidr", "example.com"),
    ("bad-tab-separated", "bad.cidr", "1.2.3.8"),
    ("bad-no-result-line", "bad.cidr", "1.2.3.9"),
    ("bad-fallback", "bad.cidr", "1.2.3.4"),
    ("bad-v6-not-found", "bad.cidr", "2001:db8::1"),
    ("control-crlf", "control.cidr", "1.2.3.4"),
    ("control-form-feed-continues", "control.cidr", "5.6.7.8"),
    ("control-vertical-tab-in-value", "control.cidr", "9.9.9.9"),
    ("empty-table", "empty.cidr", "1.2.3.4"),
    ("missing-file", "nonexist.cidr", "1.2.3.4"),
]
