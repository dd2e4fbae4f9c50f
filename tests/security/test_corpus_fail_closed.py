"""Adversarial corpus, fail closed: what an agent can make unclear must not pass a block or approve rule.

Through the real proxy (started by the real CLI) to a local HTTPS upstream, one class per table:
- a JSON body with a repeated key (`{"model":"o3","model":"gpt-4o-mini"}`) is refused (ambiguous_body);
- a value of a type the operator cannot read (`"max_tokens": "5000"`) matches block and approve rules;
- a method override naming another method (`X-HTTP-Method-Override: DELETE`) is refused (method_override);
- a repeated query parameter or header cannot hide a value from a block rule;
- an approval is bound to every header that goes upstream: a retry of an abandoned approved request
  with a header added asks a person again, while the identical retry uses the approval once.
Each attack has a benign control of the same shape that must reach the upstream.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.security.conftest import all_audit_rows, audit_row
from tests.security.support import Agent, Reply, mint_token, proxy_ca, request_bytes
from tests.support.fixtures import Firewall, RunningProxy
from tests.support.upstream import Upstream

POLICY = """
approval timeout 30s

host localhost:{port} {{
    approve POST /v1/fine_tuning/** reason "fine-tuning is billed per token"
    approve POST /v1/chat/completions when json.max_tokens > 4000
    block POST /v1/** when json.model not in ["gpt-4o-mini"]
    block POST /v2/** when json.model == "o3"
    block POST /v3/** when json.max_tokens > 4000
    block GET /run when query.mode == "danger"
    block GET /team when header.X-Team == "red"
    block DELETE
    allow
}}
"""
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    target: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    refused: tuple[str, str] | None = None  # (audit decision, reason); None: a control that must pass


CASES = [
    # a JSON body with a repeated key: both an allowlist and a blocklist read it
    Case(
        "duplicate model past an allowlist",
        "POST",
        "/v1/chat/completions",
        b'{"model": "o3", "model": "gpt-4o-mini"}',
        JSON,
        ("block", "ambiguous_body"),
    ),
    Case(
        "duplicate model past a blocklist",
        "POST",
        "/v2/x",
        b'{"model": "o3", "model": "gpt-4o-mini"}',
        JSON,
        ("block", "ambiguous_body"),
    ),
    Case(
        "duplicate model, last wins order",
        "POST",
        "/v2/x",
        b'{"model": "gpt-4o-mini", "model": "o3"}',
        JSON,
        ("block", "ambiguous_body"),
    ),
    Case(
        "duplicate key spelled with an escape",
        "POST",
        "/v1/chat/completions",
        b'{"model": "o3", "mo\\u0064el": "gpt-4o-mini"}',
        JSON,
        ("block", "ambiguous_body"),
    ),
    Case(
        "duplicate key deep in the body",
        "POST",
        "/v1/chat/completions",
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "role": "system"}]}',
        JSON,
        ("block", "ambiguous_body"),
    ),
    Case("control: one model on the allowlist", "POST", "/v1/chat/completions", b'{"model": "gpt-4o-mini"}', JSON),
    Case(
        "control: the same key in two objects",
        "POST",
        "/v2/x",
        b'{"model": "gpt-4o-mini", "metadata": {"model": "o3"}}',
        JSON,
    ),
    # a type the operator cannot read
    Case("max_tokens as a string", "POST", "/v3/x", b'{"max_tokens": "5000"}', JSON, ("block", "rule")),
    Case("max_tokens as NaN", "POST", "/v3/x", b'{"max_tokens": NaN}', JSON, ("block", "rule")),
    Case("max_tokens as a list", "POST", "/v3/x", b'{"max_tokens": [5000]}', JSON, ("block", "rule")),
    Case("control: max_tokens a small number", "POST", "/v3/x", b'{"max_tokens": 100}', JSON),
    Case("control: no max_tokens (the server's default)", "POST", "/v3/x", b'{"model": "gpt-4o-mini"}', JSON),
    # method overrides
    Case(
        "X-HTTP-Method-Override: DELETE",
        "POST",
        "/v5/x",
        headers={"X-HTTP-Method-Override": "DELETE"},
        refused=("block", "method_override"),
    ),
    Case(
        "X-HTTP-Method: DELETE",
        "POST",
        "/v5/x",
        headers={"X-HTTP-Method": "DELETE"},
        refused=("block", "method_override"),
    ),
    Case(
        "X-Method-Override: delete",
        "POST",
        "/v5/x",
        headers={"X-Method-Override": "delete"},
        refused=("block", "method_override"),
    ),
    Case("_method in the query", "POST", "/v5/x?_method=DELETE", refused=("block", "method_override")),
    Case("_method in a form body", "POST", "/v5/x", b"name=a&_method=DELETE", FORM, ("block", "method_override")),
    Case(
        "a GET that asks to be a DELETE",
        "GET",
        "/v5/x",
        headers={"X-HTTP-Method-Override": "DELETE"},
        refused=("block", "method_override"),
    ),
    Case(
        "control: the override names the request's own method",
        "POST",
        "/v5/x",
        headers={"X-HTTP-Method-Override": "POST"},
    ),
    Case("control: a form without _method", "POST", "/v5/x", b"name=a&method=DELETE", FORM),
    Case("control: DELETE is blocked by its rule", "DELETE", "/v5/x", refused=("block", "rule")),
    # repeated query parameters and headers
    Case("mode=safe then mode=danger", "GET", "/run?mode=safe&mode=danger", refused=("block", "rule")),
    Case("mode=danger then mode=safe", "GET", "/run?mode=danger&mode=safe", refused=("block", "rule")),
    Case("control: mode=safe twice", "GET", "/run?mode=safe&mode=safe"),
    Case("control: mode=safe", "GET", "/run?mode=safe"),
]


@dataclass
class Setup:
    firewall: Firewall
    agent: Agent
    upstream: Upstream

    @property
    def api(self) -> str:
        return f"localhost:{self.upstream.port}"

    def send(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        agent: Agent | None = None,
    ) -> Reply:
        return (agent or self.agent).https(
            self.api, request_bytes(method, target, self.api, headers=headers, body=body), method=method
        )

    def row(self, reply: Reply) -> dict:
        return audit_row(self.firewall.home, reply.headers["x-firewall-request-id"])


@pytest.fixture(scope="module")
def setup(module_firewall: Firewall, module_upstream: Upstream, module_proxy: RunningProxy) -> Setup:
    module_firewall.apply(POLICY.format(port=module_upstream.port))
    agent = Agent(
        module_proxy.port, "fail-closed", mint_token(module_firewall, "fail-closed"), proxy_ca(module_firewall)
    )
    return Setup(module_firewall, agent, module_upstream)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fail_closed(setup: Setup, case: Case):
    before = len(setup.upstream.seen)
    reply = setup.send(case.method, case.target, case.body, case.headers)
    reached = setup.upstream.seen[before:]
    if case.refused:
        assert reply.status == 403, (reply.status, reply.body)
        assert reached == []
        row = setup.row(reply)
        assert (row["decision"], row["reason"]) == case.refused
    else:
        assert reply.status == 200, (reply.status, reply.body)
        assert [(seen.method, seen.body) for seen in reached] == [(case.method, case.body)]


@pytest.mark.parametrize(
    ("values", "refused"), [(["blue", "red"], True), (["red", "blue"], True), (["blue", "blue"], False)]
)
def test_a_repeated_header_cannot_hide_a_value_from_a_block(setup: Setup, values: list[str], refused: bool):
    raw = request_bytes("GET", "/team", setup.api)
    head, _, rest = raw.partition(b"\r\n")
    extra = b"".join(f"X-Team: {value}\r\n".encode() for value in values)
    before = len(setup.upstream.seen)
    reply = setup.agent.https(setup.api, head + b"\r\n" + extra + rest)
    if refused:
        assert reply.status == 403, reply.body
        assert (setup.row(reply)["reason"]) == "rule"
        assert setup.upstream.seen[before:] == []
    else:
        assert reply.status == 200, reply.body
        assert len(setup.upstream.seen[before:]) == 1


# ---- approvals ----


def _pending(fw: Firewall, agent: str) -> list[dict]:
    rows = json.loads(fw.run("approvals", "list", "--json", check=True).stdout)
    return [row for row in rows if row["agent"] == agent]


def _wait_pending(
    fw: Firewall, agent: str, *, held: int | None = None, exclude: set[str] = frozenset(), timeout: float = 20
) -> dict:
    """The one pending row of `agent` not in `exclude` (with `held` as asked, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in _pending(fw, agent) if r["id"] not in exclude and (held is None or r["held"] == held)]
        if rows:
            assert len(rows) == 1, rows
            return rows[0]
        assert time.monotonic() < deadline, f"no pending request of {agent} within {timeout}s"
        time.sleep(0.1)


def _audit_of(fw: Firewall, agent: str, count: int, timeout: float = 10) -> list[tuple[str, str | None]]:
    """(decision, approval id) of each audit row of `agent`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [(r["decision"], r["approval_id"]) for r in all_audit_rows(fw.home) if r["agent"] == agent]
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{agent} has {len(rows)} audit rows, not {count}"
        time.sleep(0.05)


class Held:
    """A request sent in a thread: it waits for a person's answer."""

    def __init__(self, setup: Setup, agent: Agent, method: str, target: str, body: bytes, headers: dict[str, str]):
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._send, args=(setup, agent, method, target, body, headers), daemon=True
        )
        self._thread.start()

    def _send(self, setup, agent, method, target, body, headers) -> None:
        try:
            self.reply = setup.send(method, target, body, headers, agent=agent)
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float = 20) -> Reply:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the held request got no answer"
        if self.error:
            raise self.error
        return self.reply


TUNE = b'{"model": "gpt-4o-mini", "training_file": "file-abc"}'


def test_a_retry_with_a_header_added_does_not_use_an_abandoned_approval(setup: Setup):
    fw = setup.firewall
    agent = Agent(setup.agent.proxy_port, "fc-retry", mint_token(fw, "fc-retry"), setup.agent.ca)
    target, headers = "/v1/fine_tuning/jobs", dict(JSON)

    # The agent sends, gives up waiting (closes its connection), and a person approves afterwards.
    with agent.tls(setup.api) as conn:
        conn.sendall(request_bytes("POST", target, setup.api, headers=headers, body=TUNE))
        approved = _wait_pending(fw, "fc-retry")
    assert _wait_pending(fw, "fc-retry", held=0)["id"] == approved["id"]  # abandoned, still pending
    fw.run("approvals", "approve", approved["id"], check=True)
    before = len(setup.upstream.seen)

    # The spelling: the override is refused before any approval is looked at.
    reply = setup.send("POST", target, TUNE, headers | {"X-HTTP-Method-Override": "DELETE"}, agent=agent)
    assert reply.status == 403 and setup.row(reply)["reason"] == "method_override"

    # Any other header added, or a header changed: a new request, which a person must approve anew.
    for changed in (headers | {"OpenAI-Organization": "org-other"}, {"Content-Type": "text/plain"}):
        held = Held(setup, agent, "POST", target, TUNE, changed)
        other = _wait_pending(fw, "fc-retry", exclude={approved["id"]})
        fw.run("approvals", "deny", other["id"], check=True)
        reply = held.result()
        assert reply.status == 403 and reply.error["type"] == "approval_denied", reply.body
    assert setup.upstream.seen[before:] == []

    # Control: the identical retry uses the approval, once.
    reply = setup.send("POST", target, TUNE, headers, agent=agent)
    assert reply.status == 200, reply.body
    assert ("approve", approved["id"]) in _audit_of(fw, "fc-retry", count=5)  # abandoned, override, 2 denied
    assert [(s.method, s.path, s.body) for s in setup.upstream.seen[before:]] == [("POST", target, TUNE)]


def test_max_tokens_as_a_string_waits_for_a_person(setup: Setup):
    fw = setup.firewall
    agent = Agent(setup.agent.proxy_port, "fc-types", mint_token(fw, "fc-types"), setup.agent.ca)
    before = len(setup.upstream.seen)
    body = b'{"model": "gpt-4o-mini", "max_tokens": "5000"}'
    held = Held(setup, agent, "POST", "/v1/chat/completions", body, dict(JSON))
    row = _wait_pending(fw, "fc-types")
    assert row["rule_text"] == "approve POST /v1/chat/completions when json.max_tokens > 4000"
    fw.run("approvals", "deny", row["id"], check=True)
    assert held.result().status == 403
    assert setup.upstream.seen[before:] == []

    # Control: a small number goes straight through.
    reply = setup.send(
        "POST", "/v1/chat/completions", b'{"model": "gpt-4o-mini", "max_tokens": 100}', dict(JSON), agent=agent
    )
    assert reply.status == 200, reply.body
