"""The queue manager and its transports: from a committed queue file to
delivered (or deferred, or bounced) recipients.

* :mod:`mailhost.qmgr.manager` — qmgr(8): picks up ``incoming`` files, moves
  them to ``active``, hands each recipient to its transport, records the
  results in the queue file, removes it when every recipient is done and
  defers the rest with backoff into ``deferred``;
* :mod:`mailhost.qmgr.transport` — the transport interface and the trivial
  ``error``/``retry``/``discard`` transports (which transport a recipient
  goes to is :mod:`mailhost.resolve.transport_maps`);
* :mod:`mailhost.qmgr.virtual` — virtual(8): delivery to Maildir or mbox
  below ``virtual_mailbox_base``;
* :mod:`mailhost.qmgr.delays` — ``delay=``/``delays=`` and the delivery log
  line exactly as Postfix writes them (spec 8);
* :mod:`mailhost.qmgr.inline` — delivery during DATA for mail that needs no
  queue (cleanup's hand-off);
* :mod:`mailhost.qmgr.service` — building and running the manager inside
  ``mailhost serve`` (started by :mod:`mailhost.master`).
"""
