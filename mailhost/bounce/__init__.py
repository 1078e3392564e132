"""bounce(8): delivery status notifications.

When the queue manager records permanent failures (a 5.x.x from a transport,
or the queue lifetime running out) or a message has waited longer than
``delay_warning_time``, this package writes the RFC 3464 report Postfix's
bounce daemon writes and puts it into the queue like any other message:

* :mod:`mailhost.bounce.templates` — the built-in texts (bounce(5));
* :mod:`mailhost.bounce.dsn` — the multipart/report message itself, built with
  the standard :mod:`email` package (pure, no I/O);
* :mod:`mailhost.bounce.notify` — who gets which notification (null sender,
  double bounces, ``notify_classes``, DSN NOTIFY/RET), queueing it durably
  and the maillog lines.
"""
