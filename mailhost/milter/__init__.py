"""The milter client: smtpd_milters and non_smtpd_milters (Sendmail milter
protocol version 6), as Postfix's milter8.c speaks it.

wire.py frames packets; macros.py, settings.py hold the parameters;
connection.py is one filter connection (negotiation, events, replies;
replies.py checks a filter's reply text), client.py its stages, chain.py
several filters in order; verdict.py names the answers, edits.py applies
the end-of-message modifications; smtpd.py is the SMTP server's use of them
and local.py the local submissions' (pickup's cleanup).
"""
