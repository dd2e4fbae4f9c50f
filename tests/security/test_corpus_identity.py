"""Adversarial corpus, identity: no proxy credentials, a wrong token, one agent's token for another's grants.

The API allows GET /team/** only `when agent == "alice"`. Bob is another agent with a live token.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.security.support import Agent, basic, mint_token, read_head, read_reply, request_bytes


@pytest.fixture(scope="module")
def alice(corpus) -> Agent:
    return Agent(corpus.proxy.port, "alice", mint_token(corpus.firewall, "alice"), corpus.agent.ca)


@pytest.fixture(scope="module")
def bob(corpus) -> Agent:
    return Agent(corpus.proxy.port, "bob", mint_token(corpus.firewall, "bob"), corpus.agent.ca)


def test_the_grant_holds_for_its_agent(corpus, alice):
    before = len(corpus.upstream.seen)
    reply = alice.https(corpus.api, request_bytes("GET", "/team/plans", corpus.api))
    assert reply.status == 200 and [s.path for s in corpus.upstream.seen[before:]] == ["/team/plans"]


def test_another_agent_does_not_get_the_grant(corpus, bob):
    reply = bob.https(corpus.api, request_bytes("GET", "/team/plans", corpus.api))
    assert reply.status == 403
    row = corpus.row(reply)
    assert (row["agent"], row["reason"]) == ("bob", "default_no_rule")


def _credentials(alice: Agent, bob: Agent) -> dict[str, str | None]:
    return {
        "no credentials": None,
        "a wrong token": basic("alice", "not-the-token"),
        "bob's token under alice's name": basic("alice", bob.token),
        "alice's token under bob's name": basic("bob", alice.token),
        "an empty token": basic("alice", ""),
        "no colon": "Basic " + __import__("base64").b64encode(b"alice").decode(),
        "not base64": "Basic !!!not-base64!!!",
        "a bearer token instead of basic": f"Bearer {alice.token}",
        "the token alone": alice.token,
    }


@pytest.mark.parametrize(
    "case",
    [
        "no credentials",
        "a wrong token",
        "bob's token under alice's name",
        "alice's token under bob's name",
        "an empty token",
        "no colon",
        "not base64",
        "a bearer token instead of basic",
        "the token alone",
    ],
)
def test_bad_proxy_credentials_get_407_and_nothing_else(corpus, alice, bob, case):
    auth = _credentials(alice, bob)[case]
    before = len(corpus.upstream.seen)
    _, refused = alice.connect(corpus.api, auth=auth)
    plain = alice.plain(request_bytes("GET", f"http://{corpus.api}/team/plans", corpus.api, auth=auth))
    assert refused is not None and refused.status == 407 and "proxy-authenticate" in refused.headers
    assert plain.status == 407
    assert len(corpus.upstream.seen) == before
    assert corpus.row(plain)["reason"] == "proxy_auth_required"


def test_switching_identity_inside_a_tunnel_does_not_work(corpus, alice, bob):
    """The tunnel is bob's: alice's credentials on a request inside it are removed, not used."""
    before = len(corpus.upstream.seen)
    raw = request_bytes("GET", "/team/plans", corpus.api, headers={"Proxy-Authorization": alice.auth})
    reply = bob.https(corpus.api, raw)
    assert reply.status == 403 and corpus.row(reply)["agent"] == "bob"
    echo = bob.https(
        corpus.api, request_bytes("GET", "/echo/x", corpus.api, headers={"Proxy-Authorization": alice.auth})
    )
    assert echo.status == 200
    assert "proxy-authorization" not in corpus.upstream.seen[-1].headers
    assert len(corpus.upstream.seen) == before + 1


def refused_within(agent: Agent, target: str, timeout: float):
    """The proxy's refusal of a CONNECT by `agent`, once its token is dead there (it re-reads
    live tokens every 0.2 s); fails if every CONNECT within `timeout` seconds was let through."""
    deadline = time.monotonic() + timeout
    while True:
        sock, refused = agent.connect(target)
        sock.close()
        if refused is not None:
            return refused
        assert time.monotonic() < deadline, f"{agent.name}'s token still let a CONNECT through after {timeout} s"
        time.sleep(0.1)


def test_a_token_dies_with_its_run(corpus, tmp_path):
    """`firewall run` mints a token for the run and revokes it when the command exits."""
    done = corpus.firewall.run(
        "run",
        "--agent",
        "alice",
        "--",
        sys.executable,
        "-c",
        "import os, json; print(json.dumps(os.environ['HTTPS_PROXY']))",
    )
    assert done.returncode == 0, done.stderr
    proxy_url = json.loads(done.stdout)
    token = proxy_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    late = Agent(corpus.proxy.port, "alice", token, corpus.agent.ca)
    assert refused_within(late, corpus.api, 5).status == 407


def test_a_tunnel_opened_before_the_run_ended_closes_with_it(corpus):
    """Found a hole: a tunnel authenticated at CONNECT kept working after its token was revoked, so
    a process the agent left running could go on using the proxy after `firewall run` returned.
    Fixed: firewall/proxy/addons/identity.py checks the tunnel's token on every request."""
    from firewall.state import agents
    from firewall.state.db import open_database

    token = mint_token(corpus.firewall, "leftover")
    agent = Agent(corpus.proxy.port, "leftover", token, corpus.agent.ca)
    with agent.tls(corpus.api) as conn:
        conn.sendall(request_bytes("GET", "/v1/models", corpus.api).replace(b"Connection: close\r\n", b""))
        assert read_reply(conn).status == 200
        db = open_database(corpus.firewall.home / "firewall.db")
        try:
            agents.revoke_token(db, token)  # what `firewall run` does when its command exits
        finally:
            db.close()
        statuses = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            conn.sendall(request_bytes("GET", "/v1/models", corpus.api).replace(b"Connection: close\r\n", b""))
            statuses.append(read_reply(conn).status)
            if statuses[-1] == 407:
                break
            time.sleep(0.1)
    assert statuses[-1] == 407, statuses


def test_credentials_sent_only_on_connect_cover_the_tunnel_and_never_travel(corpus, alice):
    with alice.tls(corpus.api) as conn:
        conn.sendall(request_bytes("GET", "/echo/who", corpus.api))
        reply = read_reply(conn)
    assert reply.status == 200
    assert "proxy-authorization" not in json.loads(reply.body)["path"] + str(corpus.upstream.seen[-1].headers)


def test_an_open_websocket_carries_nothing_once_its_run_ended(corpus):
    import base64
    import os

    from firewall.state import agents
    from firewall.state.db import open_database
    from tests.support.upstream import ws_frame

    token = mint_token(corpus.firewall, "lingering")
    agent = Agent(corpus.proxy.port, "lingering", token, corpus.agent.ca)
    key = base64.b64encode(os.urandom(16)).decode()
    with agent.tls(corpus.api) as conn:
        conn.sendall(
            (
                f"GET /ws/echo HTTP/1.1\r\nHost: {corpus.api}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = read_head(conn)
        assert head.startswith(b"HTTP/1.1 101")
        db = open_database(corpus.firewall.home / "firewall.db")
        try:
            agents.revoke_token(db, token)
        finally:
            db.close()
        assert refused_within(agent, corpus.api, 5).status == 407  # the proxy knows the run ended
        before = len(corpus.upstream.seen)
        conn.sendall(ws_frame(0x1, b"still here", mask=os.urandom(4)))
        conn.settimeout(1.5)
        with pytest.raises(TimeoutError):
            conn.recv(100)  # the upstream would answer "echo: still here" had the message gone out
    assert len(corpus.upstream.seen) == before
