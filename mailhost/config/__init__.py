"""Configuration: main.cf in Postfix syntax, read into one immutable object.

``load_config(DIR)`` reads ``DIR/main.cf`` (DIR defaults to ``$MAILHOST_CONFIG``
or ``/etc/mailhost``) and returns a :class:`Config`.  Components read typed
values from it (``get_bool``, ``get_time``, ...) and never parse strings of
their own; master.cf ``-o name=value`` overrides make a new Config with
:meth:`Config.with_overrides`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from mailhost.config.expand import Expander, referenced_names
from mailhost.config.lists import split_list
from mailhost.config.maincf import read_main_cf
from mailhost.config.params import BY_NAME, parse_bool, parse_int, parse_time, validate
from mailhost.errors import ConfigError
from mailhost.log import logger

__all__ = ["DEFAULT_CONFIG_DIR", "Config", "load_config"]

log = logger("config")

DEFAULT_CONFIG_DIR = Path("/etc/mailhost")


class Config:
    """Parameters from main.cf merged with the built-in defaults."""

    def __init__(self, config_dir: Path, explicit: Mapping[str, str]) -> None:
        self.config_dir = config_dir
        self.main_cf = config_dir / "main.cf"
        self.explicit: Mapping[str, str] = MappingProxyType(dict(explicit))
        self._expanded: dict[str, str] = {}
        self._expander = Expander(self._lookup, str(self.main_cf))

    def _lookup(self, name: str) -> str | None:
        if name in self.explicit:
            return self.explicit[name]
        param = BY_NAME.get(name)
        return param.default if param is not None else None

    def is_known(self, name: str) -> bool:
        """True for parameters mailhost declares (see params.py)."""
        return name in BY_NAME

    def raw(self, name: str) -> str:
        """The unexpanded value: as set in main.cf, else the default."""
        value = self._lookup(name)
        if value is None:
            raise ConfigError(f"{name}: unknown parameter")
        return value

    def default(self, name: str) -> str:
        """The built-in default of a declared parameter."""
        param = BY_NAME.get(name)
        if param is None:
            raise ConfigError(f"{name}: unknown parameter")
        return param.default

    def get(self, name: str) -> str:
        """The fully expanded value."""
        value = self._expanded.get(name)
        if value is None:
            value = self._expander.expand(self.raw(name))
            self._expanded[name] = value
        return value

    def expand(self, text: str) -> str:
        """Expand ``$name`` references in any text against this configuration."""
        return self._expander.expand(text)

    def get_bool(self, name: str) -> bool:
        return parse_bool(name, self.get(name))

    def get_int(self, name: str) -> int:
        return parse_int(name, self.get(name))

    def get_size(self, name: str) -> int:
        """A byte count (Postfix sizes are plain integers)."""
        return parse_int(name, self.get(name))

    def get_time(self, name: str) -> float:
        """Seconds; a bare number takes the parameter's default unit."""
        param = BY_NAME.get(name)
        unit = param.time_unit if param is not None else "s"
        return parse_time(name, self.get(name), unit)

    def get_list(self, name: str) -> list[str]:
        return split_list(self.get(name))

    def with_overrides(self, overrides: Mapping[str, str]) -> Config:
        """A copy with some parameters set (master.cf ``-o name=value``)."""
        merged = dict(self.explicit)
        merged.update(overrides)
        return Config(self.config_dir, merged)

    def validate(self) -> None:
        """Check every declared typed parameter; Postfix's fatal text on error."""
        for param in BY_NAME.values():
            if param.kind.value != "string":
                validate(param, self.get(param.name))

    def unused(self) -> list[tuple[str, str]]:
        """Parameters set in main.cf that mailhost does not know and nothing
        refers to (Postfix: ``unused parameter: NAME=VALUE``)."""
        used: set[str] = set()
        for name in list(self.explicit) + list(BY_NAME):
            used |= referenced_names(self._lookup(name) or "")
        # A restriction class is a parameter its list names (postconf 3.7.11
        # prints "spam_lovers = permit" with -n and does not warn).
        used |= set(split_list(self._lookup("smtpd_restriction_classes") or ""))
        return [(n, v) for n, v in self.explicit.items() if n not in BY_NAME and n not in used]


def resolve_config_dir(config_dir: Path | None) -> tuple[Path, bool]:
    """The directory to read and whether it was named explicitly."""
    if config_dir is not None:
        return config_dir, True
    env = os.environ.get("MAILHOST_CONFIG")
    if env:
        return Path(env), True
    return DEFAULT_CONFIG_DIR, False


def load_config(
    config_dir: Path | None = None,
    *,
    overrides: Mapping[str, str] | None = None,
    check: bool = True,
    warn_unused: bool = False,
) -> Config:
    """Read ``main.cf`` from ``config_dir``.

    A directory named explicitly (argument or ``$MAILHOST_CONFIG``) must hold a
    main.cf; the default directory may be absent (built-in defaults only).
    ``check`` validates every typed parameter (daemons and most commands);
    ``postconf`` shows values without judging them, as Postfix's does.
    """
    directory, explicit_dir = resolve_config_dir(config_dir)
    directory = directory.absolute()
    main_cf = directory / "main.cf"
    settings: dict[str, str] = {}
    if main_cf.exists() or explicit_dir:
        try:
            settings = read_main_cf(main_cf)
        except FileNotFoundError:
            raise ConfigError(f"open {main_cf}: No such file or directory") from None
        except OSError as exc:
            raise ConfigError(f"open {main_cf}: {exc.strerror}") from None
    if directory != DEFAULT_CONFIG_DIR and "config_directory" not in settings:
        # Postfix records a non-default -c DIR as an explicit setting (postconf -n shows it).
        settings["config_directory"] = str(directory)
    if overrides:
        settings.update(overrides)
    config = Config(directory, settings)
    if warn_unused:
        for name, value in config.unused():
            log.warning("%s: unused parameter: %s=%s", main_cf, name, value)
    if check:
        config.validate()
    return config
