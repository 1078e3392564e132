"""milter_header_checks: a scripted milter adds or changes a header at end
of message and the table answers with an action; replayed against mailhost
and (by record_postfix_milter_header_checks.py) against a real Postfix
3.7.11 (postfix_milter_header_checks.json)."""

from __future__ import annotations

from mailhost.milter import wire
from tests.milter.cases import CONTINUE, FULL, Case, answers, quarantine
from tests.milter.peer import header_change

#: The regexp table, one rule per case (written to a file by both sides).
TABLE = """\
/^X-Spam-Flag: HOLD/ HOLD spam flag from milter
/^X-Spam-Flag: DISCARD/ DISCARD spam flag from milter
/^X-Spam-Flag: REDIRECT/ REDIRECT carol@example.com
/^X-Spam-Flag: REJECT/ REJECT 5.7.1 spam flag from milter
/^X-Spam-Flag: TEMP/ REJECT 4.7.1 try later
/^X-Spam-Flag: IGNORE/ IGNORE
/^X-Spam-Flag: REPLACE/ REPLACE X-Spam-Flag: replaced
/^X-Spam-Flag: WARN/ WARN looked at
/^X-Spam-Flag: BCC/ BCC dave@example.com
/^Subject: CHANGED/ HOLD changed subject
"""


def add(value: str) -> tuple[bytes, bytes]:
    return wire.SMFIR_ADDHEADER, wire.cstrings("X-Spam-Flag", value)


HELD = [quarantine("keep"), *CONTINUE]

HC_CASES: dict[str, Case] = {
    "hc_hold": Case(answers(E=[add("HOLD"), *CONTINUE]), FULL, held=True),
    "hc_discard": Case(answers(E=[add("DISCARD"), *CONTINUE]), FULL, discarded=True),
    "hc_redirect": Case(answers(E=[add("REDIRECT"), *CONTINUE]), FULL),
    "hc_reject": Case(answers(E=[add("REJECT"), add("HOLD"), *CONTINUE]), FULL),
    "hc_reject_temporary": Case(answers(E=[add("TEMP"), *CONTINUE]), FULL),
    "hc_ignore": Case(answers(E=[add("IGNORE"), add("other"), *HELD]), FULL, held=True),
    "hc_replace": Case(answers(E=[add("REPLACE"), *HELD]), FULL, held=True),
    "hc_warn": Case(answers(E=[add("WARN"), *HELD]), FULL, held=True),
    "hc_change_header": Case(
        answers(E=[header_change(wire.SMFIR_CHGHEADER, 1, "Subject", "CHANGED"), *CONTINUE]),
        FULL,
        held=True,
    ),
    "hc_inserted_header": Case(
        answers(E=[header_change(wire.SMFIR_INSHEADER, 1, "X-Spam-Flag", "DISCARD"), *CONTINUE]),
        FULL,
        discarded=True,
    ),
}

#: non_smtpd_milters with milter_header_checks (mail from sendmail).
LOCAL_HC_CASES: dict[str, Case] = {
    "local_hc_hold": Case(answers(E=[add("HOLD"), *CONTINUE]), [], held=True),
    "local_hc_discard": Case(answers(E=[add("DISCARD"), *CONTINUE]), []),
    "local_hc_reject": Case(answers(E=[add("REJECT"), *CONTINUE]), []),
    "local_hc_reject_temporary": Case(answers(E=[add("TEMP"), *CONTINUE]), []),
}
