"""The doctor's table on a terminal: a long fix wraps at spaces under its own start (firewall/doctor/report.py)."""

from __future__ import annotations

from firewall.doctor.line import Line, Status
from firewall.doctor.report import table

FIX = (
    "a program that passes certifi.where() itself trusts only certifi's roots: let it use SSL_CERT_FILE "
    "(ssl.create_default_context()) or the truststore package"
)


def _lines() -> list[Line]:
    return [
        Line("runtime", "python certifi", Status.WARN, "through the proxy, but does not trust the firewall's CA", FIX),
        Line("runtime", "curl", Status.OK, "through the proxy, trusts the firewall's CA"),
    ]


def test_a_long_fix_wraps_within_80_columns_without_cutting_a_word():
    out = table(_lines(), 80).splitlines()
    assert all(len(line) <= 80 for line in out)
    first = next(i for i, line in enumerate(out) if line.lstrip().startswith("fix:"))
    fix = out[first : next(i for i, line in enumerate(out) if line.lstrip().startswith("ok"))]
    assert len(fix) >= 2
    assert " ".join(line.strip() for line in fix) == f"fix: {FIX}"  # every word, in order, none cut
    start = fix[0].index("fix:")
    assert all(line.index(line.strip()) == start + 5 for line in fix[1:])  # under the fix's text


def test_piped_or_wide_the_fix_stays_one_line():
    for columns in (None, 400):
        out = table(_lines(), columns).splitlines()
        assert sum(line.strip().startswith("fix:") for line in out) == 1
        assert any(line.endswith(f"fix: {FIX}") for line in out)
