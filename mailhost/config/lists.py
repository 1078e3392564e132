"""Postfix list syntax: elements separated by commas and/or whitespace.

postconf(5): "Specify a list of ... separated by comma or whitespace".  A ``{...}``
group is one element, separators inside it are kept (``inline:{a=1, b=2}``), and
empty elements are dropped.  Braces may nest.  An unbalanced ``{`` makes the rest
of the value one element, as Postfix's ``mystrtokq`` does.
"""

from __future__ import annotations

SEPARATORS = frozenset(", \t\r\n")


def split_list(value: str) -> list[str]:
    """Split a parameter value into its list elements."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in value:
        if depth == 0 and ch in SEPARATORS:
            if current:
                items.append("".join(current))
                current = []
            continue
        if ch == "{":
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
        current.append(ch)
    if current:
        items.append("".join(current))
    return items
