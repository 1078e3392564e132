"""Properties of the main.cf lexer and of $name expansion (hypothesis)."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.config.expand import Expander
from mailhost.config.lists import split_list
from mailhost.config.maincf import parse_assignments
from mailhost.errors import ConfigError

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
# Values as they can stand in main.cf: no newlines, no leading/trailing blanks.
# (A continuation line whose first non-blank is "#" is a comment, so no word starts with "#".)
words = st.text(
    string.ascii_letters + string.digits + "$@.,:{}/#=-+", min_size=1, max_size=10
).filter(lambda w: not w.startswith("#"))
values = st.lists(words, max_size=6).map(" ".join)


@given(st.dictionaries(names, values, max_size=8), st.data())
def test_rendered_main_cf_parses_back(pairs: dict[str, str], data: st.DataObject) -> None:
    """Any name = value list, with values split over continuation lines and with
    comment lines in between, parses back to the same values (continuation
    whitespace kept)."""
    lines: list[str] = []
    expected: dict[str, str] = {}
    for name, value in pairs.items():
        parts = value.split(" ")
        first, rest = parts[0], parts[1:]
        lines.append(f"{name} = {first}" if first else f"{name} =")
        value_text = first
        for part in rest:
            indent = data.draw(st.sampled_from([" ", "\t", "   "]))
            if data.draw(st.booleans()):
                lines.append("# a comment")
            lines.append(indent + part)
            value_text += indent + part
        expected[name] = value_text.strip()
    parsed = {a.name: a.value for a in parse_assignments("\n".join(lines) + "\n", "main.cf")}
    assert parsed == expected


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=50))
def test_text_without_dollar_expands_to_itself(text: str) -> None:
    assert Expander(lambda name: None).expand(text) == text


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=20))
def test_double_dollar_is_a_literal_dollar(text: str) -> None:
    assert Expander(lambda name: None).expand(text + "$$" + text) == text + "$" + text


@settings(max_examples=300)
@given(st.text(alphabet="${}()?:ab_ 1=<>!", max_size=30))
def test_expansion_never_fails_with_anything_but_config_error(text: str) -> None:
    table = {"a": "x", "b": "", "ab": "$a$b"}
    try:
        Expander(table.get).expand(text)
    except ConfigError:
        pass


@given(names, values)
def test_reference_is_replaced_by_its_expanded_value(name: str, value: str) -> None:
    table = {name: value.replace("$", "$$")}
    assert Expander(table.get).expand(f"<${{{name}}}>") == f"<{value}>"


@given(st.lists(st.text(string.ascii_letters + "@.:", min_size=1, max_size=8), max_size=8),
       st.lists(st.sampled_from([",", " ", "\t", ", ", " ,\n "]), min_size=1))  # fmt: skip
def test_split_list_drops_every_separator(items: list[str], seps: list[str]) -> None:
    text = "".join(item + seps[i % len(seps)] for i, item in enumerate(items))
    assert split_list(text) == items
