"""The milter client: smtpd_milters and non_smtpd_milters (Sendmail milter
protocol version 6), as Postfix's milter8.c speaks it.

wire.py frames packets; macros.py, settings.py hold the parameters;
client.py is one conversation, chain.py several in order; edits.py applies
the end-of-message modifications; smtpd.py is the SMTP server's use of them
and local.py the local submissions' (pickup).
"""
