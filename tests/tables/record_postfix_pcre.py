"""Record what Postfix 3.7.11's ``postmap -q KEY pcre:FILE`` answers for the
pcre_table(5) cases below; test_pcre_matches_postfix.py compares mailhost.

Run by hand (not part of the test suite) as root on a machine with Debian's
postfix and postfix-pcre (libpcre2-8):

    .venv/bin/python tests/tables/record_postfix_pcre.py > tests/tables/postfix_pcre.json

Each case is [stdout, stderr with the lab directory as ``{dir}``, exit status].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.postfix_lab import PostfixLab

#: file name -> pcre_table(5) source
SOURCES = {
    "main.pcre": (
        "# a comment, then rules; the first match wins\n"
        "/^(.*)\\+.*@example\\.com$/ $1@example.com\n"
        "/^Case@x$/ default-caseless\n"
        "/^Case2@x$/i case-sensitive\n"
        "if /@example\\.org$/\n"
        "!/^keep@/ other@example.org\n"
        "endif\n"
        "IF!/^nested/\n"
        "/^(\\w+)-(\\d+)$/ ${2}.$(1)\n"
        "ENDIF\n"
        "/^nested-(a)?(b)$/ [$1][$2]\n"
        "/^dot.x$/ dotall-default\n"
        "/^nodot.x$/s no-dotall\n"
        "/^lazy(.+?)(\\d*)$/ <$1|$2>\n"
        "/^ungreedy(.+)(\\d*)$/U <$1|$2>\n"
        "/^ungreedy2(.+?)(\\d*)$/U <$1|$2>\n"
        "/nch/A anchored\n"
        "/endonly$/E dollar-end-only\n"
        "/enddollar$/ dollar-before-newline\n"
        "/^(?-i)Strict$/ inline-case-sensitive\n"
        "/^a(?-i)b|^alt-c$/ inline-option-alternation\n"
        "/^(?<user>[a-z]+)=(?P=user)$/ named-$1\n"
        "/^(?'q1'n)(?P<q_2>m)=\\k<q1>\\k'q_2'\\k{q1}$/ named-forms-$1$2\n"
        "/^(q)(\\1)$/ backref-$2\n"
        "/^pos(a++)b$/ possessive\n"
        "/^atom(?>a+)b$/ atomic\n"
        "/^x{2,3}y$/ counted\n"
        "/^brace{,2}$/ brace-literal\n"
        "/^hex\\x41\\x4a$/ hex\n"
        "/^[[:digit:]]+z$/ posix-class\n"
        "/^[^]a]+q$/ leading-bracket\n"
        "/^[a\\-z]+-dash$/ escaped-dash\n"
        "/^[[:alpha]+-unclosed-posix$/ unclosed-posix\n"
        "/^[:a]+-colon-class$/ colon-class\n"
        "/^[[:alpha:]-]+-posix-then-dash$/ posix-then-dash\n"
        "/ one  two # comment\n  three/x extended\n"
        "/^sp\\hace$/ horizontal-space\n"
        "/^Åx$/x x-flag-nel\n"
        "/^\\d\\s\\w\\z/ escapes-z\n"
        "/^dollar$/ a$$b\n"
        "/^u.$/ one-byte\n"
        "/^u..$/ two-bytes\n"
        "/^É$/ non-ascii-caseless\n"
        "/^é$/ non-ascii-exact\n"
        "/^(ml)$/m multiline-$1\n"
        "/^mlend\\n^$/m multiline-caret-at-end\n"
        "/^(?#comment)look(?=ahead)/ lookahead\n"
        "/^cmt(a*)(?#x)?(a*)b$/ [$1|$2]\n"
        "/^xsp(a*) ?(a*)b$/x [$1|$2]\n"
        "/^xlz(a+) (?#c) ? (a*)b$/x [$1|$2]\n"
        "/^xls(a+ ?)(a*)b$/x [$1|$2]\n"
        "/^cls(a+(?#c)?)(a*)b$/ [$1|$2]\n"
        "/(?<=be)hind$/ lookbehind\n"
        "/^grp(?:x|y)+$/ non-capturing\n"
        "/^ctl\\cA?$/ control\n"
        "/^oct\\060$/ octal\n"
        "/^empty(x?)$/ =$1=\n"
        "/^(?=q)*qa$/ quantified-lookahead-star\n"
        "/^(?=q)+qb$/ quantified-lookahead-plus\n"
        "/^(?!q){0}qc$/ lookahead-repeated-zero-times\n"
        "/^qd(?=.*x)/ lookahead-dot-after-start\n"
        "/^(?=[a-z]*2)x?[a-z]2$/ lookahead-after-caret\n"
        "/(?=.*@)x?q@/ lookahead-dot-first\n"
        "! ! /^dbl/ double-negation\n"
        "!/^zz/ fallback\n"
    ),
    "lines.pcre": (
        "/unterminated x\n"
        "/abc/Z unknown-option\n"
        "/^obsolete$/X obsolete-option\n"
        "/(a)/ $2\n"
        "/(a)/ $0\n"
        "/a/ $x\n"
        "/b/ $x-${y}\n"
        "/c/ tail$\n"
        "/d/ ${1\n"
        "!/(e)/ $1\n"
        "/^noresult$/\n"
        "!\n"
        "foo bar\n"
        "endif\n"
        "if /^ifx/ extra\n"
        "/^ifx$/ inside\n"
        "endif junk\n"
        "if/^nospace/\n"
        "/^nospace$/ no-space-after-if\n"
        "endif\n"
        "/^ok$/ ok\n"
        "if /^open/\n"
        "/^open$/ unclosed\n"
    ),
    "utf8.pcre": "/^b(.)/ [$1]\n/^c(.*)$/ [$1]\n",
    "regex.pcre": (
        "/(a/ x\n"
        "/a)/ x\n"
        "/*a/ x\n"
        "/[a/ x\n"
        "/[z-a]/ x\n"
        "/a{2}{3}/ x\n"
        "/a**/ x\n"
        "/[\\d-z]/ x\n"
        "/[a-\\d]/ x\n"
        "/a\\y/ x\n"
        "/^y{2,1}$/ x\n"
        "/a{99999}/ x\n"
        "/(?<n>a)(?<n>b)/ x\n"
        "/(a)\\2/ x\n"
        "/[[:foo:]]/ x\n"
        "/(?z)/ x\n"
        "/(?/ x\n"
        "/(?#open/ x\n"
        "/^*a/ x\n"
        "/a\\b+/ x\n"
        "/[[:a-b:]]/ x\n"
        "/[[.a.]]/ x\n"
        "/[:alpha:]/ x\n"
        "/a[=x=]/ x\n"
        "/[a-[:digit:]]/ x\n"
        "/[[:alpha:]-z]/ x\n"
        "/(?<[a)/ x\n"
        "/(?'1a'b)/ x\n"
        "/(?P<1a>b)/ x\n"
        "/(?<ab-c>d)/ x\n"
        "/(?P<>d)/ x\n"
        "/(?<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa>d)/ x\n"
        "/(?P[a)/ x\n"
        "/k?(?#c)?+/ x\n"
        "/[}\\d-/ x\n"
        "/^fine$/ fine\n"
    ),
}

#: (case id, file, key)
CASES: list[tuple[str, str, str]] = [
    ("substitution", "main.pcre", "foo+bar@example.com"),
    ("default-caseless", "main.pcre", "CASE@X"),
    ("i-flag-sensitive-miss", "main.pcre", "CASE2@X"),
    ("i-flag-sensitive-hit", "main.pcre", "Case2@x"),
    ("if-negated", "main.pcre", "z@example.org"),
    ("if-negated-miss", "main.pcre", "keep@example.org"),
    ("if-bang-no-space", "main.pcre", "user-42"),
    ("if-bang-skips-block", "main.pcre", "nested-42"),
    ("unmatched-group-empty", "main.pcre", "nested-b"),
    ("matched-groups", "main.pcre", "nested-ab"),
    ("dotall-default", "main.pcre", "dot\nx"),
    ("s-flag-turns-dotall-off", "main.pcre", "nodot\nx"),
    ("lazy", "main.pcre", "lazyabc123"),
    ("u-flag-ungreedy", "main.pcre", "ungreedyabc123"),
    ("u-flag-inverts-lazy", "main.pcre", "ungreedy2abc123"),
    ("a-flag-anchored-miss", "main.pcre", "anch"),
    ("a-flag-anchored-hit", "main.pcre", "nchx"),
    ("e-flag-newline-miss", "main.pcre", "endonly\n"),
    ("e-flag-end-hit", "main.pcre", "endonly"),
    ("dollar-before-final-newline", "main.pcre", "enddollar\n"),
    ("inline-option-miss", "main.pcre", "strict"),
    ("inline-option-hit", "main.pcre", "Strict"),
    ("inline-option-alternation-miss", "main.pcre", "aB"),
    ("inline-option-alternation-caseless-a", "main.pcre", "Ab"),
    ("inline-option-second-branch", "main.pcre", "alt-c"),
    ("inline-option-second-branch-case", "main.pcre", "ALT-C"),
    ("named-group", "main.pcre", "cd=cd"),
    ("named-group-caseless-backref", "main.pcre", "cd=CD"),
    ("named-group-forms", "main.pcre", "nm=nmn"),
    ("backreference", "main.pcre", "qQ"),
    ("possessive", "main.pcre", "posaab"),
    ("possessive-no-backtrack", "main.pcre", "posaa"),
    ("atomic", "main.pcre", "atomaab"),
    ("counted", "main.pcre", "xxxy"),
    ("counted-too-many", "main.pcre", "xxxxy"),
    ("brace-literal", "main.pcre", "brace{,2}"),
    ("brace-not-quantifier", "main.pcre", "bracee"),
    ("hex-escapes", "main.pcre", "hexAj"),
    ("posix-class", "main.pcre", "123z"),
    ("leading-bracket-class", "main.pcre", "b]bq"),
    ("escaped-dash-in-class", "main.pcre", "a-z-dash"),
    ("unclosed-posix-is-literal", "main.pcre", "[:ah]-unclosed-posix"),
    ("colon-class", "main.pcre", ":a:-colon-class"),
    ("posix-then-dash", "main.pcre", "a-b-posix-then-dash"),
    ("x-flag-extended", "main.pcre", "onetwothree"),
    ("x-flag-literal-spaces-miss", "main.pcre", " one  two # comment"),
    ("horizontal-space", "main.pcre", "sp\tace"),
    ("x-flag-skips-nel-byte-of-utf8", "main.pcre", "Åx"),
    ("escapes-lower-z", "main.pcre", "1 a"),
    ("dollar-dollar", "main.pcre", "dollar"),
    ("utf8-dot-is-one-byte", "main.pcre", "uä"),
    ("non-ascii-caseless-is-ascii-only", "main.pcre", "é"),
    ("non-ascii-exact", "main.pcre", "É"),
    ("m-flag", "main.pcre", "x\nml\ny"),
    ("m-flag-caret-not-after-final-newline", "main.pcre", "mlend\n"),
    ("m-flag-caret-after-inner-newline", "main.pcre", "mlend\n\n"),
    ("comment-and-lookahead", "main.pcre", "lookahead"),
    ("comment-then-quantifier", "main.pcre", "cmtaab"),
    ("x-flag-space-then-quantifier", "main.pcre", "xspaab"),
    ("x-flag-comment-then-quantifier", "main.pcre", "xlzaab"),
    ("x-flag-space-then-lazy-suffix", "main.pcre", "xlsaab"),
    ("comment-then-lazy-suffix", "main.pcre", "clsaab"),
    ("lookbehind", "main.pcre", "behind"),
    ("non-capturing-repeat", "main.pcre", "grpxyx"),
    ("control-escape", "main.pcre", "ctl\x01"),
    ("octal-escape", "main.pcre", "oct0"),
    ("empty-group-result", "main.pcre", "empty"),
    ("double-negation", "main.pcre", "dbl"),
    ("quantified-lookahead-star", "main.pcre", "qa"),
    ("quantified-lookahead-plus", "main.pcre", "qb"),
    ("lookahead-repeated-zero-times", "main.pcre", "qc"),
    ("lookahead-dot-after-start", "main.pcre", "qdx"),
    ("lookahead-after-caret", "main.pcre", "q2"),
    ("lookahead-dot-first", "main.pcre", "q@"),
    ("negative-fallback", "main.pcre", "rrr"),
    ("no-match", "main.pcre", "zzz"),
    ("line-warnings-ok", "lines.pcre", "ok"),
    ("line-obsolete-option", "lines.pcre", "obsolete"),
    ("line-no-replacement", "lines.pcre", "noresult"),
    ("line-if-extra-text", "lines.pcre", "ifx"),
    ("line-if-without-space", "lines.pcre", "nospace"),
    ("line-if-without-endif", "lines.pcre", "open"),
    ("line-no-match", "lines.pcre", "nothing"),
    ("regex-errors", "regex.pcre", "fine"),
    ("regex-errors-no-match", "regex.pcre", "a"),
    ("missing-file", "nonexistent.pcre", "x"),
    ("utf8-whole-character", "utf8.pcre", "cé"),
    ("utf8-group-cuts-character", "utf8.pcre", "bé"),
    ("utf8-invalid-key", "utf8.pcre", "c\udcff"),
]


def main() -> None:
    lab = PostfixLab("pfx-pcre-", owned=())
    directory = lab.directory
    (lab.config / "main.cf").write_text("compatibility_level = 3.6\n")
    for name, text in SOURCES.items():
        (directory / name).write_text(text, encoding="utf-8")
    expected: dict[str, list[object]] = {}
    for case_id, name, key in CASES:
        proc = lab.tool("/usr/sbin/postmap", "-q", key, f"pcre:{directory}/{name}")
        err = proc.stderr.replace(str(directory), "{dir}")
        expected[case_id] = [proc.stdout, err, proc.returncode]
    json.dump(expected, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
