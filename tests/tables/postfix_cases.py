"""Lookup cases whose expected answers were recorded from Postfix 3.7.11's own
``postmap -q`` on the same files and the same database rows.

``record_postfix_cases.py`` (run by hand on a machine with Debian's postfix,
postfix-mysql, postfix-pgsql and postfix-sqlite) writes
``postfix_expected.json``; the tests compare ``mailhost postmap -q`` with it.
Paths in Postfix's messages are stored with ``{dir}`` for the table directory.
"""

from __future__ import annotations

SOURCES = {
    "virtual": (
        "User@Example.COM   Target@Example.NET\n"
        "alias@example.com\ta@x.org,  b@x.org ,c@x.org\n"
        "multi@example.com first@x.org,\n   second@x.org\n\tthird@x.org\n"
        "@example.com catchall@x.org\n"
        "example.com anything\n"
        "dup@example.com one\n"
        "dup@example.com two\n"
        "# comment\n"
        "keyonly\n"
        "key\\ with\\ space  v\n"
        '"quoted key"@example.com  q\n'
        "spaced@example.com     value with   internal   spaces   \n"
        '"unbal@x  v\n'
        "colon: v\n"
        "ÄBC@Ex.com upper\n"
        "straße@x.com s\n"
    ),
    "re.cf": (
        "/^(.*)\\+.*@example\\.com$/ $1@example.com\n"
        "/^Case@x$/ r\n"
        "/^Case2@x$/i r2\n"
        "if /@example\\.org$/\n"
        "!/^keep@/ other@example.org\n"
        "endif\n"
        "/bad/I x\n"
        "/(a)(b)/ $3\n"
        "|^pipe\\|x$| piped\n"
        "/^cls[[:digit:]]+$/ digits\n"
        "/^(grp)-(\\w+)$/ ${2}.$(1)\n"
        "/^multi\n  line$/ joined\n"
        "/^dollar$/ a$$b\n"
        "/^[[:upper:]]{2}[0-9]$/ classes\n"
    ),
}

#: (case id, table, key).  ``{dir}`` is the directory holding SOURCES.
TEXT_CASES: list[tuple[str, str, str]] = [
    ("hash-exact", "hash:{dir}/virtual", "user@example.com"),
    ("hash-folded-key", "hash:{dir}/virtual", "USER@EXAMPLE.COM"),
    ("hash-value-verbatim", "hash:{dir}/virtual", "alias@example.com"),
    ("hash-continuation", "hash:{dir}/virtual", "multi@example.com"),
    ("hash-catchall-key", "hash:{dir}/virtual", "@example.com"),
    ("hash-domain-key", "hash:{dir}/virtual", "example.com"),
    ("hash-duplicate-first-wins", "hash:{dir}/virtual", "dup@example.com"),
    ("hash-key-without-value", "hash:{dir}/virtual", "keyonly"),
    ("hash-backslash-key", "hash:{dir}/virtual", "key\\ with\\ space"),
    ("hash-quoted-key", "hash:{dir}/virtual", '"quoted key"@example.com'),
    ("hash-quoted-prefix", "hash:{dir}/virtual", '"quoted'),
    ("hash-interior-spaces", "hash:{dir}/virtual", "spaced@example.com"),
    ("hash-unknown", "hash:{dir}/virtual", "nobody@example.com"),
    ("hash-unbalanced-quote-line", "hash:{dir}/virtual", '"unbal@x'),
    ("hash-colon-key", "hash:{dir}/virtual", "colon:"),
    ("hash-utf8-upper", "hash:{dir}/virtual", "ÄBC@ex.com"),
    ("hash-utf8-lower", "hash:{dir}/virtual", "äbc@EX.COM"),
    ("hash-sharp-s-folds-to-ss", "hash:{dir}/virtual", "STRASSE@x.com"),
    ("hash-default-type", "{dir}/virtual", "alias@example.com"),
    ("texthash-exact", "texthash:{dir}/virtual", "user@example.com"),
    ("texthash-folded", "texthash:{dir}/virtual", "USER@example.COM"),
    ("texthash-continuation", "texthash:{dir}/virtual", "multi@example.com"),
    ("texthash-duplicate", "texthash:{dir}/virtual", "dup@example.com"),
    ("texthash-unknown", "texthash:{dir}/virtual", "nobody@example.com"),
    ("texthash-quoted", "texthash:{dir}/virtual", '"quoted key"@example.com'),
    ("inline-spaces", "inline:{{a=1, b=2, {{ c = three four }}}}", "c"),
    ("inline-folded", "inline:{{A=1, b=2}}", "a"),
    ("inline-upper-key", "inline:{{A=1, b=2}}", "B"),
    ("inline-missing", "inline:{{a=1}}", "z"),
    ("inline-empty-value", "inline:{{a=1 d=}}", "d"),
    ("inline-no-equals", "inline:{{a}}", "a"),
    ("inline-bad-syntax", "inline:a=1", "a"),
    ("static-value", "static:foo", "anything"),
    ("static-braces", "static:{{ hello world }}", "x"),
    ("static-empty-braces", "static:{{}}", "x"),
    ("static-missing-name", "static:", "x"),
    ("unsupported-type", "foo:bar", "x"),
    ("hash-missing-index", "hash:{dir}/nonexist", "x"),
    ("regexp-substitution", "regexp:{dir}/re.cf", "foo+bar@example.com"),
    ("regexp-default-insensitive", "regexp:{dir}/re.cf", "case@x"),
    ("regexp-i-flag-sensitive-miss", "regexp:{dir}/re.cf", "CASE2@X"),
    ("regexp-i-flag-sensitive-hit", "regexp:{dir}/re.cf", "Case2@x"),
    ("regexp-if-negated", "regexp:{dir}/re.cf", "z@example.org"),
    ("regexp-if-negated-miss", "regexp:{dir}/re.cf", "keep@example.org"),
    ("regexp-other-delimiter", "regexp:{dir}/re.cf", "pipe|x"),
    ("regexp-posix-class", "regexp:{dir}/re.cf", "cls12"),
    ("regexp-braced-groups", "regexp:{dir}/re.cf", "grp-abc"),
    ("regexp-continuation-kept", "regexp:{dir}/re.cf", "multi  line"),
    ("regexp-dollar-dollar", "regexp:{dir}/re.cf", "dollar"),
    ("regexp-upper-class-icase", "regexp:{dir}/re.cf", "ab1"),
    ("regexp-no-match", "regexp:{dir}/re.cf", "zzz"),
]

#: SQL rows present in every database (table ``pfalias``).
SQL_ROWS: list[tuple[str, str | None, str | None, int]] = [
    ("a@example.com", "x@example.net", None, 1),
    ("multi@example.com", "m1@x.org", None, 1),
    ("multi@example.com", "m2@x.org", "m2b", 1),
    ("empty@example.com", "", None, 1),
    ("null@example.com", None, None, 1),
    ("o'brien@example.com", "quote-ok", None, 1),
    ("user", "bare-user", None, 1),
    ("inactive@example.com", "never", None, 0),
    ("a\\b@c", "backslash-ok", None, 1),
]

#: query-file name -> (query, extra settings)
SQL_QUERY_FILES: dict[str, tuple[str, dict[str, str]]] = {
    "alias": ("SELECT goto, extra FROM pfalias WHERE address='%s' AND active = 1", {}),
    "split": ("SELECT '%u|%d|%1|%2|%3'", {}),
    "fmt": (
        "SELECT goto FROM pfalias WHERE address='%s'",
        {"result_format": "smtp:[%s] u=%u d=%d U=%U D=%D S=%S 1=%1"},
    ),
    "dom": ("SELECT goto FROM pfalias WHERE address='%s'", {"domain": "example.com"}),
    "limit": ("SELECT goto FROM pfalias WHERE address='%s'", {"expansion_limit": "1"}),
    "lit": ("SELECT '$myhostname|${x}|%%|%s'\n   || ''", {}),
    "like": (
        "SELECT goto FROM pfalias WHERE address LIKE '%%%d' AND goto <> '' ORDER BY goto LIMIT 1",
        {},
    ),
}

SQL_LEGACY = {
    "table": "pfalias",
    "select_field": "goto",
    "where_field": "address",
    "additional_conditions": "AND active = 1",
}

#: (case id, query-file name, key) — run against sqlite, mysql and pgsql each.
SQL_CASES: list[tuple[str, str, str]] = [
    ("folded-key", "alias", "A@EXAMPLE.COM"),
    ("two-rows-two-columns", "alias", "multi@example.com"),
    ("empty-string-skipped", "alias", "empty@example.com"),
    ("null-skipped", "alias", "null@example.com"),
    ("quote-in-key", "alias", "o'brien@example.com"),
    ("key-without-at", "alias", "user"),
    ("inactive-row", "alias", "inactive@example.com"),
    ("injection-or-true", "alias", "x' OR '1'='1@example.com"),
    ("backslash-key", "alias", "a\\b@c"),
    ("split-labels", "split", "a@mail.example.com"),
    ("split-no-at-suppressed", "split", "user"),
    ("split-empty-local-suppressed", "split", "@example.com"),
    ("split-empty-domain-suppressed", "split", "user@"),
    ("split-too-few-labels", "split", "a@b"),
    ("split-empty-label", "split", "x@a..b"),
    ("split-leading-dot-domain", "split", "x@.a.b.c"),
    ("split-last-at", "split", "a@b@c.d.e"),
    ("result-format", "fmt", "a@example.com"),
    ("result-format-two-rows", "fmt", "multi@example.com"),
    ("domain-filter-match", "dom", "a@example.com"),
    ("domain-filter-case", "dom", "a@EXAMPLE.com"),
    ("domain-filter-bare-user", "dom", "user"),
    ("domain-filter-at-domain", "dom", "@example.com"),
    ("domain-filter-subdomain", "dom", "a@sub.example.com"),
    ("expansion-limit", "limit", "multi@example.com"),
    ("legacy-form", "legacy", "a@example.com"),
    ("no-dollar-expansion-percent-literal", "lit", "k"),
    ("percent-s-key", "alias", "%s@example.com"),
    ("like-pattern", "like", "z@example.com"),
]
