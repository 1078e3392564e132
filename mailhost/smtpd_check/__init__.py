"""smtpd's restriction stages (Postfix's smtpd_check.c): who may connect,
say HELO, send from an address, send to an address, send DATA and finish it.

* :mod:`.state` — what one session's checks know and remember;
* :mod:`.reject` — how a decision becomes a reply and a log line
  (``warn_if_reject``, ``defer_if_permit``/``defer_if_reject``,
  ``soft_bounce``, the DSN fix-up);
* :mod:`.access` and :mod:`.actions` — access(5) tables: which keys are
  looked up, and what each action value does;
* :mod:`.generic` — one restriction list evaluated in order, with
  ``smtpd_restriction_classes``;
* the restriction families: :mod:`.basic`, :mod:`.names`,
  :mod:`.destination`, :mod:`.login`, :mod:`.dnsxl`, :mod:`.server_access`;
* :mod:`.stages` — the stage drivers smtpd calls (client, HELO, MAIL, RCPT,
  DATA, end of DATA, ETRN), with ``smtpd_delay_reject``;
* :mod:`.settings` — every parameter read once per listener.
"""
