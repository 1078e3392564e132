"""A listener's settings under stress (Postfix's STRESS_README): the same
main.cf and ``-o`` overrides with ``stress = yes``, so every parameter whose
default reads ``${stress?...}`` takes its overload value — ``smtpd_timeout``
10s, ``smtpd_hard_error_limit`` 1, ``smtpd_per_request_deadline`` yes — unless
the administrator set it.  Sessions get these when their service is at its
process limit (:mod:`mailhost.smtpd.capacity`), as master(8) starts smtpd
processes with ``-o stress=yes`` then.
"""

from __future__ import annotations

from mailhost.config import Config
from mailhost.log import logger
from mailhost.smtpd.deadline import DeadlinePolicy
from mailhost.smtpd.settings import SmtpdSettings


def under_stress(
    cfg: Config, settings: SmtpdSettings, deadlines: DeadlinePolicy
) -> tuple[SmtpdSettings, DeadlinePolicy]:
    """``settings`` and ``deadlines`` (built from ``cfg``) with stress = yes;
    the same objects when stress changes nothing."""
    stressed = cfg.with_overrides({"stress": "yes"})
    stress_deadlines = DeadlinePolicy.from_config(stressed)
    # The settings were read once already: their warnings (an invalid
    # smtpd_tls_security_level, ...) are not repeated for the stress copy.
    quiet = logger("smtpd")
    was = quiet.disabled
    quiet.disabled = True
    try:
        stress_settings = SmtpdSettings.from_config(stressed)
    finally:
        quiet.disabled = was
    if stress_settings == settings:
        stress_settings = settings
    if stress_deadlines == deadlines:
        stress_deadlines = deadlines
    return stress_settings, stress_deadlines
