"""End to end over HTTP/2 on both sides: an upstream that quotes the injected credential in a
response trailer (sent after the body, after mitmproxy's response hook) has it masked before the
agent gets it; a trailer that quotes nothing passes unchanged (the control), and the credential did
reach the upstream (so the mask is not an absent value)."""

from __future__ import annotations

import time

import pytest

from tests.security.support import Agent, h2_exchange, mint_token, proxy_ca
from tests.support.h2_upstream import H2Upstream

SECRET = "sk-proj-H2TRAILERKEY0123456789abcdefXYZ"
POLICY = """
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}
host localhost:{port} {{
    inject openai
    allow GET
}}
"""


@pytest.fixture(scope="module")
def setup(module_firewall, module_proxy, test_ca, tmp_path_factory):
    with H2Upstream(test_ca, tmp_path_factory.mktemp("h2")) as upstream:
        fw = module_firewall
        fw.add_secret("openai", SECRET, provider="openai")
        fw.apply(POLICY.format(port=upstream.port))
        agent = Agent(module_proxy.port, "h2-agent", mint_token(fw, "h2-agent"), proxy_ca(fw))
        yield agent, upstream


def _get(agent: Agent, port: int) -> tuple[int | None, bytes, dict[bytes, bytes]]:
    target = f"localhost:{port}"
    with agent.tls(target, alpn=["h2"]) as conn:
        assert conn.selected_alpn_protocol() == "h2"
        headers = [(":method", "GET"), (":scheme", "https"), (":authority", target), (":path", "/v1/models")]
        trailers: list[tuple[bytes, bytes]] = []
        status, body = h2_exchange(conn, headers, received_trailers=trailers)
        return status, body, dict(trailers)


def test_an_http2_response_trailer_quoting_the_credential_is_masked(setup):
    agent, upstream = setup
    deadline = time.monotonic() + 10
    while True:  # the proxy picks up the policy and the vault within a poll interval
        status, body, trailers = _get(agent, upstream.port)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and body == b"ok\n", (status, body)
    assert upstream.protocols[-1] == "h2"  # HTTP/2 to the upstream too
    assert upstream.seen[-1]["authorization"] == f"Bearer {SECRET}"  # injected on the way out
    assert trailers[b"x-echo-auth"] == b"Bearer " + b"*" * len(SECRET)
    assert SECRET.encode() not in b"".join(trailers.values())
    assert trailers[b"x-ok"] == b"fine"  # the control: a trailer that quotes nothing is left alone
