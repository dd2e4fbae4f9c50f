"""The proxy's CA: named after the project, ECDSA, and an older RSA CA kept as it is.

What a client sees is read from the certificate the proxy really presents, through a real
proxy and a real TLS handshake: certificate errors show the leaf's issuer.
"""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mitmproxy.certs import CertStore

from firewall.proxy import ca
from firewall.state.home import open_home
from tests.security.support import Agent, mint_token, proxy_ca, request_bytes
from tests.support.fixtures import running_proxy


def names(name: x509.Name) -> dict[str, str]:
    return {attr.oid._name: attr.value for attr in name}


def presented_leaf(firewall, upstream, upstream_ca_file) -> x509.Certificate:
    """The certificate the proxy presents for the upstream, to a client trusting the agents' CA;
    a request on that connection is answered (the chain really verifies)."""
    agent = Agent(0, "ca-test", mint_token(firewall, "ca-test"), proxy_ca(firewall))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        agent.proxy_port = proxy.port
        target = f"localhost:{upstream.port}"
        with agent.tls(target) as conn:
            leaf = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))
            conn.sendall(request_bytes("GET", "/v1/models", target))
            reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
    return leaf


@pytest.fixture
def allowed(firewall, upstream):
    firewall.apply(f"host localhost:{upstream.port} {{\n    allow GET /v1/models\n}}\n")
    return firewall


def test_a_client_sees_the_projects_name_and_an_ecdsa_leaf(allowed, upstream, upstream_ca_file):
    leaf = presented_leaf(allowed, upstream, upstream_ca_file)
    assert names(leaf.issuer) == {"commonName": "agent-firewall CA", "organizationName": "agent-firewall"}
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    cert = x509.load_pem_x509_certificate(ca.ca_cert_path(open_home(allowed.home)).read_bytes())
    assert names(cert.subject) == names(leaf.issuer)
    assert "mitmproxy" not in cert.subject.rfc4514_string() + leaf.issuer.rfc4514_string()


def test_an_older_rsa_ca_still_loads_and_is_not_replaced(allowed, upstream, upstream_ca_file):
    """Control: a CA made before (mitmproxy's, RSA) may be trusted in users' stores: kept byte for byte."""
    home = open_home(allowed.home)
    home.ca_dir.mkdir(mode=0o700, exist_ok=True)
    with CertStore.umask_secret():
        CertStore.create_store(home.ca_dir, ca.BASENAME, 2048)
    before = {p.name: p.read_bytes() for p in home.ca_dir.iterdir() if p.name.endswith(".pem")}
    leaf = presented_leaf(allowed, upstream, upstream_ca_file)
    assert names(leaf.issuer) == {"commonName": "mitmproxy", "organizationName": "mitmproxy"}
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    after = {name: (home.ca_dir / name).read_bytes() for name in before}
    assert after == before
    assert proxy_ca(allowed).read_bytes() == before["mitmproxy-ca-cert.pem"]
    assert any("made by an older version" in line for line in allowed.proxy_log())


def test_a_new_ca_is_owner_only_and_its_public_file_holds_no_key(tmp_path):
    home = open_home(tmp_path / "home")
    cert_file = ca.ensure_ca(home)
    assert ca.is_own_ca(cert_file)
    assert b"PRIVATE KEY" not in cert_file.read_bytes()
    assert b"BEGIN EC PRIVATE KEY" in (home.ca_dir / "mitmproxy-ca.pem").read_bytes()
    for path in home.ca_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    first = cert_file.read_bytes()
    ca.ensure_ca(home)  # a second start keeps it
    assert cert_file.read_bytes() == first
