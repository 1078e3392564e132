"""Per-mailbox quota: Maildir++ ``maildirsize`` bookkeeping shared with
Dovecot and Courier (:mod:`.maildirsize`), the pure accept/refuse/warn
decisions (:mod:`.policy`) and their application at delivery time under a
per-mailbox lock (:mod:`.enforce`), with the warning message (:mod:`.warning`).
"""
