"""The queue manager and its transports: from a committed queue file to
delivered (or deferred, or bounced) recipients.

* :mod:`mailhost.qmgr.manager` — qmgr(8): picks up ``incoming`` files, moves
  them to ``active``, hands each recipient to its transport, records the
  results in the queue file, removes it when every recipient is done and
  defers the rest with backoff into ``deferred``;
* :mod:`mailhost.qmgr.transport` — the transport interface, the choice of a
  transport from the address class and ``transport_maps``, and the trivial
  ``error``/``discard`` transports;
* :mod:`mailhost.qmgr.virtual` — virtual(8): delivery to Maildir or mbox
  below ``virtual_mailbox_base``;
* :mod:`mailhost.qmgr.delays` — ``delay=``/``delays=`` and the delivery log
  line exactly as Postfix writes them (spec 8);
* :mod:`mailhost.qmgr.service` — running the manager inside ``mailhost serve``.
"""
