"""Per-mailbox quota: Maildir++ ``maildirsize`` bookkeeping shared with
Dovecot and Courier (:mod:`.maildirsize`), the pure accept/refuse/warn
decisions (:mod:`.policy`) and their application at delivery time under a
per-mailbox lock (:mod:`.enforce`, used by the virtual transport), the
parameters and limit lookups (:mod:`.settings`), the RCPT TO check after alias
expansion (:mod:`.rcpt`, used by smtpd and ``mailhost trace``), and the
warning message (:mod:`.warning`).  See docs/quota.md.
"""
