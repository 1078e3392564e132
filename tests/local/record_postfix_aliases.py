"""Record what Postfix 3.7.11's postalias(1) makes of aliases(5) sources
(run by hand; needs Debian's postfix installed):

    .venv/bin/python -m tests.local.record_postfix_aliases

Each case is one small source file; for each the recorder keeps the entries
``postalias -s`` lists (the time-dependent ``YP_*`` records left out), the
warnings postalias printed (the file name replaced by ``FILE``) and the
answers of ``postalias -q`` for some keys.  The cases are the hand-written
ones below plus lines drawn at random (fixed seed) from an alphabet of RFC
822 specials, so the tokenizer is compared character class by character
class.  Writes postfix_aliases.json; the tests never run Postfix.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

from tests.support.postfix_lab import PostfixLab

HERE = Path(__file__).parent

CASES: list[str] = [
    "root: alice\n",
    "Root: Alice\n",
    '"a 9": x\n',
    "spaced : y\n",
    "list: x,y\n",
    "ws: x   y\n",
    "comm: x (comment) , y\n",
    "cont: a,\n   b,\n\tc\n",
    "nocolon x\n",
    "empty:\n",
    "a@b: c\n",
    "dup: one\ndup: two\n",
    'pipe: "|cmd arg"\n',
    "pipe2: |cmd arg\n",
    "file: /var/log/mail.log\n",
    "inc: :include:/etc/foo\n",
    "hash: b # c\n",
    "ab cd: e\n",
    'ang: Joe <joe@x>, "q \\" x"@y\n',
    "perc%x: y\n",
    '"quoted@x": z\n',
    'q: "a\\b"\n',
    'u: "unterminated\n',
    "c: (x\n",
    "d: [1.2.3.4\\]x\n",
    "e: a\\ b\n",
    "f: a:b:c\n",
    "g: x;\n",
    "<h>: x\n",
    "i.j: k\n",
    "(c) k: v\n",
    'x"y"z: w\n',
    "l: <a, b>\n",
    "a,b: c\n",
    ": x\n",
    "# comment\n\npostmaster: root\n  # indented comment\nmailer-daemon: postmaster\n",
    "  leading: space\nok: fine\n",
    'pipe3: "|/usr/bin/procmail -a \\"$EXTENSION\\""\n',
    "tab:\tx\t,\ty\n",
    "umlaut: j\u00fcrgen\n",
    "cr: a\r\n",
    'quote"mid: x\n',
    'emptyq: ""\n',
    "comma: ,\n",
    "commas: a,,b\n",
    "ops: a|b, c%d, e!f\n",
    '"x"|y: z\n',
    'v: "x" |cmd\n',
    "MiXeD: ToP\nmixed: second\n",
]

ALPHABET = 'ab: :,"\\()<>@.[];|/% \t#!'


def random_cases(count: int, seed: int = 3711) -> list[str]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        n = rng.randint(1, 14)
        text = "".join(rng.choice(ALPHABET) for _ in range(n))
        cases.append("k" + text.lstrip(" \t#") + "\n")
    return cases


def postalias(
    lab: PostfixLab, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return lab.tool("postalias", *args, stdin=stdin)


def record_case(lab: PostfixLab, number: int, source: str) -> dict[str, object]:
    path = lab.directory / f"aliases{number}"
    path.write_text(source)
    built = postalias(lab, str(path))
    dump = postalias(lab, "-s", str(path))
    entries = []
    for line in dump.stdout.splitlines():
        key, _, value = line.partition(":\t")
        if not key.startswith("YP_"):
            entries.append([key, value])
    warnings = [
        line.replace(str(path), "FILE")
        for line in built.stderr.splitlines()
        if line.startswith("postalias: warning:")
    ]
    return {"source": source, "entries": sorted(entries), "warnings": warnings}


def record_queries(lab: PostfixLab) -> dict[str, object]:
    directory = lab.directory
    path = directory / "query"
    path.write_text("Root: Alice\npostmaster: root\nlist: x,y\n")
    postalias(lab, str(path))
    answers: dict[str, object] = {}
    for key in ("root", "ROOT", "nope", "@", "YP_LAST_MODIFIED", "list"):
        done = postalias(lab, "-q", key, str(path))
        answers[key] = {"stdout": done.stdout, "status": done.returncode}
    done = postalias(lab, "-q", "-", str(path), stdin="POSTMASTER\nnope\nlist\n")
    answers["-"] = {"stdout": done.stdout, "status": done.returncode}
    missing = postalias(lab, "-q", "x", str(directory / "missing"))
    answers["missing"] = {
        "stderr": missing.stderr.replace(str(directory), "DIR"),
        "status": missing.returncode,
    }
    build_missing = postalias(lab, str(directory / "missing"))
    answers["build_missing"] = {
        "stderr": build_missing.stderr.replace(str(directory), "DIR"),
        "status": build_missing.returncode,
    }
    return answers


def record_newaliases(directory: Path) -> dict[str, object]:
    """newaliases (sendmail -bi) with several alias_database settings."""
    conf = directory / "nconf"
    conf.mkdir()
    (directory / "nal").write_text("x y\nroot: a\n")
    (directory / "nal2").write_text("z: w\n")
    answers: dict[str, object] = {}
    for name, value in {
        "two_tables": "hash:DIR/nal, DIR/nal2",
        "missing": "hash:DIR/none",
        "texthash": "texthash:DIR/nal",
        "empty": "",
    }.items():
        setting = value.replace("DIR", str(directory))
        (conf / "main.cf").write_text(f"compatibility_level = 3.6\nalias_database = {setting}\n")
        env = dict(os.environ, MAIL_CONFIG=str(conf))
        done = subprocess.run(["newaliases"], capture_output=True, text=True, env=env, check=False)
        answers[name] = {
            "alias_database": value,
            "stderr": done.stderr.replace(str(directory), "DIR"),
            "status": done.returncode,
            "built": sorted(p.name for p in directory.glob("nal*.db")),
        }
        for db in directory.glob("nal*.db"):
            db.unlink()
    return answers


def main() -> None:
    lab = PostfixLab("pfx-aliases-", config="conf", owned=())
    (lab.config / "main.cf").write_text(
        "compatibility_level = 3.6\nmyhostname = mail.example.org\n"
    )
    cases = CASES + random_cases(400)
    recorded = {
        "cases": [record_case(lab, n, source) for n, source in enumerate(cases)],
        "queries": record_queries(lab),
        "newaliases": record_newaliases(lab.directory),
    }
    (HERE / "postfix_aliases.json").write_text(
        json.dumps(recorded, indent=1, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
