"""``mailhost postconf``: show main.cf parameters exactly as Postfix's postconf(1).

Output rules (verified with postconf 3.7.11, spec 1.5): ``name = value`` sorted
by name (named parameters in command-line order); every displayed value has its
whitespace runs collapsed; an empty value prints as ``name =``; ``-n`` shows
explicit settings only, ``-d`` built-in defaults, ``-h`` values only, ``-H``
names only, ``-x`` expands ``$name``, ``-f`` folds long lines with a 4-space
indent.  An unknown name is a warning on stderr with exit status 0.
"""

from __future__ import annotations

from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.config import Config, load_config
from mailhost.config.params import BY_NAME
from mailhost.errors import UsageError
from mailhost.log import logger

log = logger("postconf")

LINE_LIMIT = 80
INDENT = "    "


def fold(text: str) -> list[str]:
    """Break a display line at blanks so no line passes 80 columns;
    continuation lines start with four spaces (postconf -f)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > LINE_LIMIT and current.strip():
            lines.append(current)
            current = INDENT + word
        else:
            current = candidate
    lines.append(current)
    return lines


def _display(value: str) -> str:
    return " ".join(value.split())


def _names_to_show(config: Config, *, explicit_only: bool, defaults: bool) -> list[str]:
    if defaults:
        return sorted(BY_NAME)
    unused = {name for name, _ in config.unused()}
    if explicit_only:
        return sorted(n for n in config.explicit if n not in unused)
    return sorted(set(BY_NAME) | {n for n in config.explicit if n not in unused})


@click.command(context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-n", "explicit_only", is_flag=True, help="Only parameters set in main.cf.")
@click.option("-d", "defaults", is_flag=True, help="Built-in default values.")
@click.option("-h", "values_only", is_flag=True, help="Values only, without 'name = '.")
@click.option("-H", "names_only", is_flag=True, help="Names only.")
@click.option("-x", "expand", is_flag=True, help="Expand $name references.")
@click.option("-f", "fold_lines", is_flag=True, help="Fold long lines at 80 columns.")
@click.argument("names", nargs=-1)
@command_errors("postconf")
def postconf(
    config_dir: Path | None,
    explicit_only: bool,
    defaults: bool,
    values_only: bool,
    names_only: bool,
    expand: bool,
    fold_lines: bool,
    names: tuple[str, ...],
) -> None:
    """Print main.cf parameters the way Postfix's postconf does."""
    if defaults and explicit_only:
        raise UsageError("specify one of -d -n")
    config = load_config(config_dir, check=False)
    if defaults:
        config = Config(config.config_dir, {})
    else:
        for name, value in config.unused():
            log.warning("%s: unused parameter: %s=%s", config.main_cf, name, value)
    if names:
        selected: list[str] = []
        for name in names:
            known = name in BY_NAME or (not defaults and name in config.explicit)
            if not known or (not defaults and name in {n for n, _ in config.unused()}):
                log.warning("%s: unknown parameter", name)
                continue
            if explicit_only and name not in config.explicit:
                continue
            selected.append(name)
    else:
        selected = _names_to_show(config, explicit_only=explicit_only, defaults=defaults)
    for name in selected:
        if names_only:
            click.echo(name)
            continue
        value = _display(config.get(name) if expand else config.raw(name))
        line = value if values_only else (f"{name} = {value}" if value else f"{name} =")
        for out in fold(line) if fold_lines else [line]:
            click.echo(out)
