"""The agent's TLS context is made once per leaf, not per connection (firewall/proxy/addons/agent_tls.py).

In-process, with mitmproxy's own tlsconfig behind the addon as in the proxy (master.py): the
agent's side of real handshakes in memory, the client verifying the leaf against the proxy's CA
for the name it asked for. Structural, no timing: `made` counts the contexts built.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from mitmproxy import connection, tls
from mitmproxy.addons import tlsconfig
from mitmproxy.proxy import context
from mitmproxy.test import taddons
from OpenSSL import SSL

from firewall.proxy.addons.agent_tls import AgentTLS
from firewall.proxy.ca import BASENAME, create_ca


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    create_ca(tmp_path)  # the firewall's own kind of CA (ECDSA P-256), as the proxy makes it
    return tmp_path


def _tls_start(options, sni: str | None, server_host: str) -> tls.TlsData:
    client = connection.Client(peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 8080), sni=sni)
    ctx = context.Context(client, options)
    ctx.server.address = (server_host, 443)
    return tls.TlsData(client, ctx)


def _handshake(server: SSL.Connection, ca_file: Path, name: str) -> dict:
    """A real client handshake against `server` in memory; the leaf the client verified for `name`."""
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    for _ in range(10):  # a handshake is two or three flights; bounded
        try:
            client.do_handshake()
            return client.getpeercert()
        except ssl.SSLWantReadError:
            pass
        server.bio_write(outgoing.read())
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            incoming.write(server.bio_read(65536))
        except SSL.WantReadError:
            pass
    raise AssertionError("the handshake did not finish")


def _serve(addon: AgentTLS, config: tlsconfig.TlsConfig, options, sni: str, host: str) -> SSL.Connection:
    data = _tls_start(options, sni, host)
    addon.tls_start_client(data)
    config.tls_start_client(data)  # mitmproxy's own: leaves a connection it was handed as it is
    assert data.ssl_conn is not None
    return data.ssl_conn


def _names(cert: dict) -> set[str]:
    return {value for kind, value in cert["subjectAltName"] if kind == "DNS"}


def test_one_context_per_leaf_for_many_connections(confdir):
    addon, config = AgentTLS(), tlsconfig.TlsConfig()
    with taddons.context(addon, config) as tctx:
        tctx.configure(config, confdir=str(confdir), upstream_cert=False)
        ca_file = confdir / f"{BASENAME}-ca-cert.pem"
        for _ in range(3):
            server = _serve(addon, config, tctx.options, "api.example.com", "api.example.com")
            assert "api.example.com" in _names(_handshake(server, ca_file, "api.example.com"))
        assert addon.made == 1


def test_control_another_name_gets_its_own_leaf_and_context(confdir):
    """The cache is per name: a second host is never handed the first host's certificate."""
    addon, config = AgentTLS(), tlsconfig.TlsConfig()
    with taddons.context(addon, config) as tctx:
        tctx.configure(config, confdir=str(confdir), upstream_cert=False)
        ca_file = confdir / f"{BASENAME}-ca-cert.pem"
        first = _handshake(_serve(addon, config, tctx.options, "a.example", "a.example"), ca_file, "a.example")
        second = _handshake(_serve(addon, config, tctx.options, "b.example", "b.example"), ca_file, "b.example")
        assert "a.example" in _names(first) and "b.example" not in _names(first)
        assert "b.example" in _names(second) and "a.example" not in _names(second)
        # The CONNECT host is part of the choice too (mitmproxy names it in the leaf).
        _serve(addon, config, tctx.options, "a.example", "other.example")
        assert addon.made == 3


def test_a_leaf_for_one_name_fails_verification_for_another(confdir):
    """Control for the verification itself: the client really checks the name."""
    addon, config = AgentTLS(), tlsconfig.TlsConfig()
    with taddons.context(addon, config) as tctx:
        tctx.configure(config, confdir=str(confdir), upstream_cert=False)
        server = _serve(addon, config, tctx.options, "a.example", "a.example")
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(server, confdir / f"{BASENAME}-ca-cert.pem", "b.example")


def test_settings_it_does_not_mirror_are_left_to_mitmproxy(confdir):
    """With a client certificate requested, mitmproxy's tlsconfig builds the connection (per connection)."""
    addon, config = AgentTLS(), tlsconfig.TlsConfig()
    with taddons.context(addon, config) as tctx:
        tctx.configure(config, confdir=str(confdir), upstream_cert=False, request_client_cert=True)
        data = _tls_start(tctx.options, "api.example.com", "api.example.com")
        addon.tls_start_client(data)
        assert data.ssl_conn is None and addon.made == 0
        config.tls_start_client(data)
        assert data.ssl_conn is not None


def test_an_option_change_builds_the_context_again(confdir):
    addon, config = AgentTLS(), tlsconfig.TlsConfig()
    with taddons.context(addon, config) as tctx:
        tctx.configure(config, confdir=str(confdir), upstream_cert=False)
        _serve(addon, config, tctx.options, "api.example.com", "api.example.com")
        tctx.configure(addon, tls_version_client_min="TLS1_3")
        _serve(addon, config, tctx.options, "api.example.com", "api.example.com")
        assert addon.made == 2
