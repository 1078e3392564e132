"""Provisioning: the SQL database that the ``sqlite:``/``mysql:``/``pgsql:``
lookup tables read.

The tables and columns are PostfixAdmin's (``domain``, ``mailbox``, ``alias``,
``alias_domain``), so an existing PostfixAdmin database can be adopted and the
usual PostfixAdmin query files keep working; mailhost's own state lives in
tables whose names start with ``mailhost_``.  The ``mailhost domain|mailbox|
alias|alias-domain`` commands call the service modules here; each command is one
transaction (:func:`mailhost.db.engine.transaction`).
"""
