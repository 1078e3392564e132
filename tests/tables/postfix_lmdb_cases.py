"""``lmdb:`` lookups whose expected answers were recorded from Postfix 3.7.11's
own ``postmap`` (Debian's postfix-lmdb) on indexes built by Postfix's postmap.

``record_postfix_lmdb.py`` builds the indexes of :data:`INDEXES` from
:data:`SOURCE`, runs every case of :data:`CASES` with ``/usr/sbin/postmap``,
writes the answers (stdout, stderr with the table directory as ``{dir}``,
status) to ``postfix_lmdb.json`` and copies the indexes it queried into
``data/lmdb/``; the suite reads those very files, without Postfix.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

#: The postmap source of every index (the lines of postfix_cases.py's virtual
#: file that a lookup table can store, plus a few more).
SOURCE = (
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
    "ÄBC@Ex.com upper\n"
    "straße@x.com s\n"
    "user+ext@example.com extended\n"
    "utf8@example.com Jürgen Ünicode\n"
)

#: index name -> postmap build options.  Postfix names the file NAME.lmdb.
INDEXES: dict[str, tuple[str, ...]] = {
    "virtual": (),  # the default: keys folded, key and value end in one NUL
    "nonul": ("-n",),  # keys and values without the trailing NUL
    "withnul": ("-N",),  # explicitly with it (the same as the default)
    "nofold": ("-f",),  # keys stored as written
}

#: The source mtime and index mtime (seconds before now) of the ``stale``
#: table: a copy of virtual.lmdb whose source changed after it was built.
STALE_AGES = (3600, 7200)

#: (case id, postmap arguments).  ``{dir}`` is the directory of the indexes.
CASES: list[tuple[str, tuple[str, ...]]] = [
    ("lmdb-exact", ("-q", "user@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-folded-key", ("-q", "USER@EXAMPLE.COM", "lmdb:{dir}/virtual")),
    ("lmdb-value-verbatim", ("-q", "alias@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-continuation", ("-q", "multi@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-catchall-key", ("-q", "@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-domain-key", ("-q", "example.com", "lmdb:{dir}/virtual")),
    ("lmdb-duplicate-first-wins", ("-q", "dup@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-key-without-value", ("-q", "keyonly", "lmdb:{dir}/virtual")),
    ("lmdb-backslash-key", ("-q", "key\\ with\\ space", "lmdb:{dir}/virtual")),
    ("lmdb-quoted-key", ("-q", '"quoted key"@example.com', "lmdb:{dir}/virtual")),
    ("lmdb-interior-spaces", ("-q", "spaced@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-extension-key", ("-q", "user+ext@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-no-partial-key-search", ("-q", "user+other@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-key-prefix-miss", ("-q", "user@example.co", "lmdb:{dir}/virtual")),
    ("lmdb-backslash-zero-text-miss", ("-q", "user@example.com\\0", "lmdb:{dir}/virtual")),
    ("lmdb-unknown", ("-q", "nobody@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-utf8-upper", ("-q", "ÄBC@ex.com", "lmdb:{dir}/virtual")),
    ("lmdb-utf8-lower", ("-q", "äbc@EX.COM", "lmdb:{dir}/virtual")),
    ("lmdb-sharp-s-folds-to-ss", ("-q", "STRASSE@x.com", "lmdb:{dir}/virtual")),
    ("lmdb-sharp-s-key", ("-q", "Straße@X.com", "lmdb:{dir}/virtual")),
    ("lmdb-utf8-value", ("-q", "utf8@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-empty-key", ("-q", "", "lmdb:{dir}/virtual")),
    ("lmdb-second-table", ("-q", "alias@example.com", "lmdb:{dir}/nonul", "lmdb:{dir}/virtual")),
    ("lmdb-nonul-exact", ("-q", "user@example.com", "lmdb:{dir}/nonul")),
    ("lmdb-nonul-folded", ("-q", "User@EXAMPLE.com", "lmdb:{dir}/nonul")),
    ("lmdb-nonul-utf8", ("-q", "ÄBC@ex.com", "lmdb:{dir}/nonul")),
    ("lmdb-nonul-unknown", ("-q", "nobody@example.com", "lmdb:{dir}/nonul")),
    ("lmdb-nonul-empty-key", ("-q", "", "lmdb:{dir}/nonul")),
    ("lmdb-withnul-exact", ("-q", "alias@example.com", "lmdb:{dir}/withnul")),
    ("lmdb-nofold-folded-query-misses", ("-q", "User@Example.COM", "lmdb:{dir}/nofold")),
    ("lmdb-nofold-lower-misses", ("-q", "user@example.com", "lmdb:{dir}/nofold")),
    ("lmdb-nofold-f-exact", ("-f", "-q", "User@Example.COM", "lmdb:{dir}/nofold")),
    ("lmdb-nofold-f-utf8", ("-f", "-q", "ÄBC@Ex.com", "lmdb:{dir}/nofold")),
    ("lmdb-nofold-f-sharp-s", ("-f", "-q", "straße@x.com", "lmdb:{dir}/nofold")),
    ("lmdb-f-on-folded-index", ("-f", "-q", "USER@example.com", "lmdb:{dir}/virtual")),
    ("lmdb-stale-index-warning", ("-q", "user@example.com", "lmdb:{dir}/stale")),
    ("lmdb-sequence", ("-s", "lmdb:{dir}/virtual")),
    ("lmdb-sequence-nonul", ("-s", "lmdb:{dir}/nonul")),
    ("lmdb-missing-index", ("-q", "x", "lmdb:{dir}/nonexist")),
    ("lmdb-not-an-lmdb-file", ("-q", "x", "lmdb:{dir}/garbage")),
    ("lmdb-empty-file", ("-q", "x", "lmdb:{dir}/empty")),
    ("lmdb-index-is-directory", ("-q", "x", "lmdb:{dir}/directory")),
]

#: Broken "indexes" made by the recorder and the test alike: name -> content
#: (None: a directory named NAME.lmdb).
BROKEN: dict[str, bytes | None] = {
    "garbage": b"this is not an LMDB file\n" * 200,
    "empty": b"",
    "directory": None,
}


def make_broken(directory: Path) -> None:
    """The non-index files of BROKEN in ``directory``."""
    for name, content in BROKEN.items():
        path = directory / f"{name}.lmdb"
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)


def make_stale(directory: Path) -> None:
    """``stale``: a copy of virtual.lmdb whose source is newer than it (but not
    new enough for Postfix's 100-second grace)."""
    shutil.copyfile(directory / "virtual.lmdb", directory / "stale.lmdb")
    (directory / "stale").write_text(SOURCE, encoding="utf-8")
    now = time.time()
    source_age, index_age = STALE_AGES
    os.utime(directory / "stale", (now - source_age, now - source_age))
    os.utime(directory / "stale.lmdb", (now - index_age, now - index_age))
