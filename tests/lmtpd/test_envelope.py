"""MAIL FROM parameters (mailhost.lmtpd.envelope): SIZE and BODY taken,
anything else refused, never an exception (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhost.lmtpd.envelope import MailParameters, mail_parameters
from mailhost.reply import Reply
from mailhost.smtpd.paths import parse_mail

params = st.lists(
    st.tuples(
        st.sampled_from(["SIZE", "size", "BODY", "Body", "FOO", "RET", ""]) | st.text(max_size=8),
        st.none() | st.text(max_size=12) | st.integers(0, 10**12).map(str),
    ),
    max_size=4,
)


@given(params, st.integers(0, 10**9))
def test_any_parameters_give_a_value_or_a_reply(
    given_params: list[tuple[str, str | None]], limit: int
) -> None:
    result = mail_parameters(given_params, limit)
    if isinstance(result, Reply):
        assert result.code in (501, 552, 555)
        return
    assert all(name.upper() in ("SIZE", "BODY") for name, _ in given_params)
    assert not limit or result.size <= limit
    assert all(value in ("7BIT", "8BITMIME") for _, value in result.kept)


@given(st.integers(0, 10**12), st.integers(1, 10**9))
def test_size_is_judged_against_message_size_limit(size: int, limit: int) -> None:
    result = mail_parameters([("SIZE", str(size))], limit)
    if size > limit:
        assert result == Reply(552, "5.3.4", "Message size exceeds fixed limit")
    else:
        assert result == MailParameters(size)


def test_parsed_mail_from_parameters() -> None:
    path = parse_mail("FROM:<s@client.test> SIZE=120 BODY=8bitmime")
    assert mail_parameters(path.params, 0) == MailParameters(120, (("BODY", "8BITMIME"),))
    assert mail_parameters(parse_mail("FROM:<> SIZE").params, 0) == Reply(
        555, "5.5.4", "Unsupported parameters"
    )
    assert mail_parameters(parse_mail("FROM:<> SIZE=1x").params, 0) == Reply(
        501, "5.5.4", "Bad message size syntax"
    )
