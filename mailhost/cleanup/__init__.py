"""cleanup(8): what is stored, and where it goes.

smtpd decides *whether* to take a message; cleanup decides *what* is queued:
canonical rewriting and masquerading (:mod:`mailhost.resolve.rewrite`),
virtual alias expansion with duplicate removal (:mod:`.expand`), the headers
cleanup adds to local submissions (:mod:`.headers`), the durable queue write
or the hand-off to inline delivery, the ``cleanup``/``qmgr`` log lines and
the queue manager's wake-up (:mod:`.service`).  smtpd at end of DATA and
pickup for each maildrop file are its two callers.
"""
