"""The proxy's certificate authority and the trust bundles built around it.

mitmproxy's CA lives in the state folder (`ca/`). Its private key
(`mitmproxy-ca.pem`, `mitmproxy-ca.p12`) never leaves that folder; agents get
only the public certificate, inside a bundle with the system's roots
(`SSL_CERT_FILE` replaces a client's whole trust store, so our CA alone would
break every host that is not intercepted).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from firewall.state.home import Home, StateError, check_private_file, ensure_private_dir, write_private_file

BASENAME = "mitmproxy"
PRIVATE_FILES = ("mitmproxy-ca.pem", "mitmproxy-ca.p12")
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")


def ca_cert_path(home: Home) -> Path:
    return home.ca_dir / f"{BASENAME}-ca-cert.pem"


def agent_bundle_path(home: Home) -> Path:
    return home.run_dir / "ca-bundle.pem"


def agent_ca_path(home: Home) -> Path:
    return home.run_dir / "ca-cert.pem"


def system_roots() -> Path:
    for candidate in SYSTEM_BUNDLES:
        if Path(candidate).is_file():
            return Path(candidate)
    import certifi

    return Path(certifi.where())


def ensure_ca(home: Home) -> Path:
    """Create the CA once (owner-only files); return its public certificate."""
    from mitmproxy.certs import CertStore

    ensure_private_dir(home.ca_dir)
    check_ca_permissions(home)
    CertStore.from_store(path=home.ca_dir, basename=BASENAME, key_size=2048)
    restrict_ca_files(home)
    return ca_cert_path(home)


def check_ca_permissions(home: Home) -> None:
    """Refuse a CA private key that other users could read."""
    for name in PRIVATE_FILES:
        path = home.ca_dir / name
        if path.exists():
            check_private_file(path)


def restrict_ca_files(home: Home) -> None:
    if not home.ca_dir.exists():
        return
    for path in home.ca_dir.iterdir():
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)


def write_agent_bundles(home: Home) -> tuple[Path, Path]:
    """(system roots + our CA, our CA alone) for agents; never the private key."""
    cert = ensure_ca(home).read_bytes()
    if b"PRIVATE KEY" in cert:
        raise StateError(f"{ca_cert_path(home)} holds a private key; refusing to give it to agents")
    bundle = system_roots().read_bytes().rstrip(b"\n") + b"\n" + cert
    write_private_file(agent_bundle_path(home), bundle)
    write_private_file(agent_ca_path(home), cert)
    return agent_bundle_path(home), agent_ca_path(home)


def read_upstream_ca(extra_ca: Path) -> bytes:
    """The extra upstream CA's PEM, or StateError saying why it cannot be used."""
    try:
        extra = extra_ca.read_bytes()
    except OSError as exc:
        raise StateError(f"{extra_ca}: cannot read the upstream CA: {exc.strerror}") from None
    if b"BEGIN CERTIFICATE" not in extra:
        raise StateError(f"{extra_ca}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)")
    return extra


def upstream_trust_bundle(home: Home, extra_ca: Path | None) -> Path:
    """What upstream certificates are checked against: the system roots, plus `extra_ca`."""
    if extra_ca is None:
        return system_roots()
    extra = read_upstream_ca(extra_ca)
    path = home.run_dir / f"upstream-trust-{os.getpid()}.pem"
    write_private_file(path, system_roots().read_bytes().rstrip(b"\n") + b"\n" + extra)
    return path
