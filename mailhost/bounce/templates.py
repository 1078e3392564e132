"""The built-in notification templates of bounce(5), as Postfix 3.7 prints
them with ``postconf -t`` (recorded in tests/bounce/postfix_bounce.json).

A template has a ``From:`` and ``Subject:`` (and ``Postmaster-Subject:`` for
the copy sent to the postmaster) and a text with ``$name`` references:
``$myhostname`` and, in the delay template, ``$delay_warning_time_hours`` and
``$maximal_queue_lifetime_days`` — the parameter converted to that unit and
truncated to a whole number, as bounce(8) does (a 1s ``delay_warning_time``
prints as ``0 hour(s)``).  ``bounce_template_file`` (custom templates) is not
supported; the built-in texts are always used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: bounce(5): the ``_<unit>`` suffixes a time parameter may take in a template.
_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
_REFERENCE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    """One notification kind: the header values and the message text."""

    sender_name: str
    subject: str
    postmaster_subject: str
    text: str

    def expand(self, values: dict[str, str | float]) -> str:
        """The text with ``$name`` / ``${name}`` replaced; a time parameter
        with a unit suffix (``$maximal_queue_lifetime_days``) is converted."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name in values:
                return str(values[name])
            base, _, unit = name.rpartition("_")
            if unit in _UNITS and base in values:
                return str(int(float(values[base]) // _UNITS[unit]))
            return match.group(0)

        return _REFERENCE.sub(replace, self.text)


_SIGNATURE = """\
For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system
"""

FAILURE = Template(
    sender_name="Mail Delivery System",
    subject="Undelivered Mail Returned to Sender",
    postmaster_subject="Postmaster Copy: Undelivered Mail",
    text="""\
This is the mail system at host $myhostname.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

"""
    + _SIGNATURE,
)

DELAY = Template(
    sender_name="Mail Delivery System",
    subject="Delayed Mail (still being retried)",
    postmaster_subject="Postmaster Warning: Delayed Mail",
    text="""\
This is the mail system at host $myhostname.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than $delay_warning_time_hours hour(s).
It will be retried until it is $maximal_queue_lifetime_days day(s) old.

"""
    + _SIGNATURE,
)

TEMPLATES = {"failure": FAILURE, "delay": DELAY}
