"""Final delivery: the building blocks of the ``virtual`` (and ``local``)
transports — where a queued message becomes a file in a mailbox.

``paths`` turns a ``virtual_mailbox_maps`` result into a safe path below
``virtual_mailbox_base``; ``owner`` checks the ``virtual_uid_maps`` and
``virtual_gid_maps`` results; ``headers`` prepends Return-Path/X-Original-To/
Delivered-To and detects Delivered-To loops; ``maildir`` and ``mbox`` write
the message the way virtual(8) does; ``status`` maps write errors to DSN codes
(spec 4.3).  Quota decisions live in :mod:`mailhost.quota`.
"""
