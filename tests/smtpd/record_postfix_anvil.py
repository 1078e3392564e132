"""Record Postfix 3.7.11's answers to tests/smtpd/anvil_cases.py (run by hand, as root):

    .venv/bin/python -m tests.smtpd.record_postfix_anvil

Starts a throwaway Postfix instance with one smtpd listener per scenario
(the scenario's ``-o`` limits) and its anvil(8) service, replays every
scenario, stops the instance (anvil logs its statistics when it exits) and
writes postfix_anvil.json: each scenario's replies and smtpd log lines, and
anvil's statistics lines with the service ports written as the scenario's
name and the time stamps as ``TIME``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import trustme

from tests.smtpd.anvil_cases import SCENARIOS, STATISTICS, limit_log_lines, run_scenario
from tests.smtpd.record_postfix_dialogues import MAIN_CF
from tests.support.postfix_lab import PostfixLab, services

HERE = Path(__file__).parent

#: anvil_status_update_time of the statistics recording.
STATISTICS_TIME = "3s"

_STAMP = re.compile(r" at \w{3} [ \d]\d \d\d:\d\d:\d\d$")


def statistics_lines(text: str, tag: str, ports: dict[str, int]) -> list[str]:
    """anvil's ``statistics:`` lines, ports named after their scenario."""
    names = {f"127.0.0.1:{port}:": f"{name}:" for name, port in ports.items()}
    out = []
    for line in text.splitlines():
        _head, sep, rest = line.partition(f"{tag}[")
        if not sep or "statistics: " not in rest:
            continue
        message = _STAMP.sub(" at TIME", rest.split("]: ", 1)[1])
        for port, name in names.items():
            message = message.replace(port, name)
        out.append(message)
    return out


def record_statistics() -> list[str]:
    """anvil's first report on a fresh instance (anvil_status_update_time =
    STATISTICS_TIME after its start) after the STATISTICS scenario."""
    lab = PostfixLab("pfx-anvil-stats-")
    ca = trustme.CA()
    ca.issue_cert("mx.example.com").private_key_and_cert_chain_pem.write_to_path(
        str(lab.directory / "cert.pem")
    )
    lab.write_main_cf(
        MAIN_CF.format(dir=lab.directory) + f"anvil_status_update_time = {STATISTICS_TIME}\n"
    )
    (port,) = lab.write_master_cf(STATISTICS[0], services=services("smtp", "relay", "tlsmgr"))
    with lab.running():
        run_scenario(port, STATISTICS[1])
        text = lab.wait_log("statistics: max cache size", timeout=20)
    return statistics_lines(text, "postfix/anvil", {"statistics": port})


def main() -> None:
    lab = PostfixLab("pfx-anvil-")
    ca = trustme.CA()
    ca.issue_cert("mx.example.com").private_key_and_cert_chain_pem.write_to_path(
        str(lab.directory / "cert.pem")
    )
    lab.write_main_cf(MAIN_CF.format(dir=lab.directory))
    names = list(SCENARIOS)
    ports = dict(
        zip(
            names,
            lab.write_master_cf(
                *(SCENARIOS[name][0] for name in names),
                services=services("smtp", "relay", "tlsmgr"),
            ),
            strict=True,
        )
    )
    recorded: dict[str, object] = {}
    with lab.running():
        for name in names:
            offset = lab.log_size()
            actions = SCENARIOS[name][1]
            replies = run_scenario(ports[name], actions)
            connections = len({index for index, _, _ in actions})
            text = lab.wait_log(
                lambda t, n=connections: t.count("disconnect from") >= n, since=offset, timeout=20
            )
            recorded[name] = {"replies": replies, "log": limit_log_lines(text, "postfix/smtpd")}
    recorded["anvil_statistics"] = record_statistics()
    (HERE / "postfix_anvil.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
