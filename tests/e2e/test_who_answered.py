"""Who let a held request through, in `firewall audit` and `audit --json`: the person and where
they answered (`alice via cli`), or the standing grant (`grant grt_… by alice`), never confused
with each other; rows nobody answered say nothing (issue 17). A real proxy, real agents."""

from __future__ import annotations

import getpass

import pytest

from tests.e2e.test_approvals import TUNE, apply, finish, start_agent, wait_pending
from tests.support.fixtures import REAL_KEY, Firewall

AGENT = "ci-who"
ME = getpass.getuser()


@pytest.fixture(scope="module")
def fw(module_firewall, module_upstream, module_proxy) -> Firewall:
    module_firewall.add_secret("openai", REAL_KEY, provider="openai")
    apply(module_firewall, module_upstream.port)
    return module_firewall


def _rows(fw: Firewall, count: int) -> list[dict]:
    return fw.audit_rows_once(lambda rows: sum(r["agent"] == AGENT for r in rows) >= count)


def test_the_audit_names_the_person_and_the_grant_apart(fw, module_upstream):
    tune = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    agent = start_agent(fw, AGENT, tune, TUNE)
    (held,) = wait_pending(fw, AGENT)
    fw.run("approvals", "approve", held["id"], "--for", "10m", check=True)  # a person, with the CLI
    assert finish(agent)[0] == "200"
    assert finish(start_agent(fw, AGENT, tune, TUNE))[0] == "200"  # passed by the standing grant
    assert finish(start_agent(fw, AGENT, f"{module_upstream.base_url}/v1/models"))[0] == "200"  # the control
    rows = [r for r in _rows(fw, 3) if r["agent"] == AGENT]

    by_person, by_grant, plain = rows
    assert by_person["approval_id"] == held["id"] and by_person["answered_by"] == f"{ME} via cli"
    assert by_grant["approval_id"].startswith("grt_")
    assert by_grant["answered_by"] == f"grant {by_grant['approval_id']} by {ME}"
    assert plain["approval_id"] is None and plain["answered_by"] is None

    table = fw.run("audit", "--agent", AGENT, check=True).stdout.splitlines()  # piped: every column
    assert table[0].split()[-2:] == ["APPROVAL", "DETAIL"]
    assert table[1].split()[-4:] == [ME, "via", "cli", "-"] and "grant" not in table[1]  # DETAIL restated it
    assert table[2].split()[-5:] == ["grant", by_grant["approval_id"], "by", ME, "-"]
    assert table[3].split()[-2:] == ["-", "-"]

    narrow = fw.run("audit", "--agent", AGENT, env={"COLUMNS": "80"}, check=True).stdout.splitlines()
    assert max(len(line) for line in narrow) <= 80
    assert narrow[0].split()[-1] == "APPROVAL"  # kept at 80 columns; DETAIL had nothing left to say
    assert f"{ME} via cli"[:13] in narrow[1] and " grant grt_" in narrow[2]


def test_a_denial_names_who_denied(fw, module_upstream):
    agent = start_agent(fw, AGENT + "-d", f"{module_upstream.base_url}/v1/fine_tuning/jobs", TUNE)
    (held,) = wait_pending(fw, AGENT + "-d")
    fw.run("approvals", "deny", held["id"], check=True)
    assert finish(agent)[0] == "403"
    rows = fw.audit_rows_once(lambda rows: any(r["agent"] == AGENT + "-d" for r in rows))
    (row,) = [r for r in rows if r["agent"] == AGENT + "-d"]
    assert (row["decision"], row["answered_by"]) == ("approval_denied", f"{ME} via cli")
