"""TLS session resumption with upstreams (firewall/proxy/addons/upstream_sessions.py): a new agent
connection resumes the session the proxy's last connection to the same upstream got, and only
there. The upstream is a real local HTTPS server that records, per request, whether its TLS
connection resumed a session (Python's `SSLSocket.session_reused`)."""

from __future__ import annotations

import ssl

import httpx

from tests.security.support import mint_token, proxy_ca


def _new_connection_get(proxy_url: str, verify: ssl.SSLContext, url: str) -> int:
    """One request on a connection of its own (a new client: no connection kept from before)."""
    with httpx.Client(proxy=proxy_url, verify=verify, timeout=15) as client:
        return client.get(url).status_code


def _direct_get(ca_file, url: str) -> int:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file)), timeout=15) as client:
        return client.get(url).status_code


def test_a_new_agent_connection_resumes_the_upstream_session(firewall, upstream, proxy):
    firewall.apply(f"host localhost:{upstream.port} {{\n    allow GET\n}}\n")
    token = mint_token(firewall, "resumer")
    proxy_url = f"http://resumer:{token}@127.0.0.1:{proxy.port}"
    verify = ssl.create_default_context(cafile=str(proxy_ca(firewall)))
    codes = [_new_connection_get(proxy_url, verify, f"{upstream.base_url}/v1/models") for _ in range(3)]
    assert codes == [200, 200, 200]
    assert [seen.reused for seen in upstream.seen] == [False, True, True]


def test_control_the_upstream_reports_no_resumption_when_no_session_is_offered(upstream, upstream_ca_file):
    """The flag the test above reads is not always true: a client that offers no session (each
    new httpx client here has its own SSL context) gets a full handshake every time."""
    assert [_direct_get(upstream_ca_file, f"{upstream.base_url}/v1/models") for _ in range(2)] == [200, 200]
    assert [seen.reused for seen in upstream.seen] == [False, False]


def test_a_session_is_not_offered_to_another_upstream_name(firewall, upstream, proxy):
    """The same server under its other name (127.0.0.1, which its certificate also names): the
    session got for `localhost` was checked against `localhost`, so it is not offered there; the
    second connection under the new name resumes that name's own session."""
    firewall.apply(f"host localhost:{upstream.port}, 127.0.0.1:{upstream.port} {{\n    allow GET\n}}\n")
    token = mint_token(firewall, "namer")
    proxy_url = f"http://namer:{token}@127.0.0.1:{proxy.port}"
    verify = ssl.create_default_context(cafile=str(proxy_ca(firewall)))
    by_name = f"{upstream.base_url}/v1/models"
    by_address = f"https://127.0.0.1:{upstream.port}/v1/models"
    codes = [_new_connection_get(proxy_url, verify, url) for url in (by_name, by_name, by_address, by_address)]
    assert codes == [200, 200, 200, 200]
    assert [seen.reused for seen in upstream.seen] == [False, True, False, True]
