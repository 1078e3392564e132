"""lmtpd: mailhost as an LMTP store (RFC 2033), the store node's side of
``edge ──lmtp──▶ store``: a master.cf service run by ``mailhost serve``
that takes mail over LMTP and delivers it with the virtual(8) and local(8)
delivery code into Maildirs (with quota), answering once per recipient
after DATA.  See docs/lmtpd.md."""
