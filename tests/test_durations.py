"""One duration grammar (firewall.text) for the policy language and every command line option:
what one accepts, the others accept, with the same number of seconds."""

from __future__ import annotations

import pytest

from firewall.audit.times import TimeSpecError, parse_time
from firewall.policy.errors import PolicyError
from firewall.policy.loader import compile_source
from firewall.text import parse_duration

ACCEPTED = {"250ms": 0.25, "30s": 30, "15m": 900, "1.5h": 5400, "7d": 604800, "2w": 1209600, "90": 90}
REFUSED = ["", "5 m", "m", "1y", "-5m", "1e3s", "5mm", "2025-01-31"]


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED.items())
def test_every_place_reads_a_duration_the_same(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_time(text, now=10_000_000) == pytest.approx(10_000_000 - seconds)
    compiled = compile_source(f"approval timeout {text}\ndefault block\n")
    assert compiled.policy.approval_timeout == pytest.approx(seconds)


@pytest.mark.parametrize("text", REFUSED)
def test_every_place_refuses_the_same(text):
    assert parse_duration(text) is None
    if text != "2025-01-31":  # a date is a time for --since, not a duration
        with pytest.raises(TimeSpecError):
            parse_time(text, now=10_000_000)
    with pytest.raises(PolicyError):
        compile_source(f"approval timeout {text}\ndefault block\n")
