"""The proxy's certificate authority and the trust bundles built around it.

The CA lives in the state folder (`ca/`), under the file names mitmproxy's
`tlsconfig` looks for (`mitmproxy-ca.pem`: its basename is fixed). Its private key
(`mitmproxy-ca.pem`, `mitmproxy-ca.p12`) never leaves that folder; agents get
only the public certificate, inside a bundle with the system's roots
(`SSL_CERT_FILE` replaces a client's whole trust store, so our CA alone would
break every host that is not intercepted).

The firewall creates the CA itself (mitmproxy would make an RSA one named
"mitmproxy"): an ECDSA P-256 key, named after this project, so a certificate
error names agent-firewall. mitmproxy signs every leaf with the CA's key and
gives the leaf that same key, so leaves are ECDSA too: smaller certificates and
a cheaper handshake signature than RSA-2048. A CA made by an older version (RSA,
named mitmproxy) is kept and keeps working: users may have installed it in
trust stores, so it is never replaced behind their back (docs/proxy.md says how
to move to the new one).
"""

from __future__ import annotations

import datetime
import logging
import os
import stat
from pathlib import Path

from firewall.state.home import Home, StateError, check_private_file, ensure_private_dir, write_private_file

log = logging.getLogger("firewall.proxy")
BASENAME = "mitmproxy"  # mitmproxy's CONF_BASENAME: the file names tlsconfig loads
CA_NAME = "agent-firewall CA"  # the CA's common name: what a certificate error shows as the issuer
CA_ORGANIZATION = "agent-firewall"
CA_VALIDITY = datetime.timedelta(days=10 * 365)
CA_BACKDATE = datetime.timedelta(days=2)  # clocks a little behind still accept it (as mitmproxy does)
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
    if not (home.ca_dir / f"{BASENAME}-ca.pem").exists():
        create_ca(home.ca_dir)
    elif ca_cert_path(home).exists() and not is_own_ca(ca_cert_path(home)):
        log.info(
            "the CA in %s was made by an older version (named mitmproxy, RSA); it keeps working. For one "
            "named agent-firewall (ECDSA): stop the proxy, move that folder away, start the proxy, and "
            "trust the new ca-cert.pem wherever you installed the old one",
            home.ca_dir,
        )
    try:
        CertStore.from_store(path=home.ca_dir, basename=BASENAME, key_size=2048)  # loads it; adds the dhparam file
    except ValueError as exc:  # a damaged key or certificate: refuse, and change nothing (the user decides)
        raise ValueError(
            f"the proxy's CA in {home.ca_dir} cannot be read ({exc}); nothing was changed. To make a new "
            f"one: move {home.ca_dir} away, start the proxy again, and trust the new ca-cert.pem wherever "
            "agents trusted the old one"
        ) from exc
    restrict_ca_files(home)
    return ca_cert_path(home)


def create_ca(directory: Path) -> None:
    """Write a new CA (ECDSA P-256, named agent-firewall) in the files mitmproxy loads; owner-only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    # The extensions mitmproxy gives its own CA (mitmproxy/certs.py, create_ca): clients that check
    # strictly (Python 3.13's VERIFY_X509_STRICT, Go) accept its leaves the same way.
    cert = (
        x509.CertificateBuilder()
        .serial_number(x509.random_serial_number())
        .subject_name(name)
        .issuer_name(name)
        .not_valid_before(now - CA_BACKDATE)
        .not_valid_after(now - CA_BACKDATE + CA_VALIDITY)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(**usage, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = cert.public_bytes(serialization.Encoding.PEM)
    # Key and certificate in PKCS12 too, as mitmproxy writes it (for trust stores that import .p12).
    bundle = pkcs12.serialize_key_and_certificates(BASENAME.encode(), key, cert, None, serialization.NoEncryption())
    # The certificate first, then the key: an interrupted start leaves no key without its certificate.
    write_private_file(directory / f"{BASENAME}-ca-cert.pem", public)
    write_private_file(directory / f"{BASENAME}-ca.p12", bundle)
    write_private_file(directory / f"{BASENAME}-ca.pem", private + public)


def is_own_ca(cert_file: Path) -> bool:
    """Whether the CA certificate at `cert_file` is one this project made (named agent-firewall)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    organizations = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return any(attr.value == CA_ORGANIZATION for attr in organizations)


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
    given_before = read_given_ca(home)
    cert = ensure_ca(home).read_bytes()
    if b"PRIVATE KEY" in cert:
        raise StateError(f"{ca_cert_path(home)} holds a private key; refusing to give it to agents")
    changed = replaced_ca_warning(home, given_before, cert)
    if changed:
        log.warning(changed)
    bundle = system_roots().read_bytes().rstrip(b"\n") + b"\n" + cert
    write_private_file(agent_bundle_path(home), bundle)
    write_private_file(agent_ca_path(home), cert)
    return agent_bundle_path(home), agent_ca_path(home)


def read_given_ca(home: Home) -> bytes | None:
    """The CA certificate agents were last given (`run/ca-cert.pem`), if any: what they trust."""
    try:
        return agent_ca_path(home).read_bytes()
    except OSError:
        return None


def kept_by_next_start(home: Home, given: bytes | None) -> bool:
    """Whether the next proxy start keeps the CA agents were given (`given`, see `read_given_ca`):
    its key is there and its certificate is that one. Otherwise the start makes or changes it,
    and agents must be given the new bundle (and told, when they trusted another)."""
    if given is None or not (home.ca_dir / PRIVATE_FILES[0]).exists():
        return False
    try:
        return ca_cert_path(home).read_bytes().strip() == given.strip()
    except OSError:
        return False


def replaced_ca_warning(home: Home, given_before: bytes | None, current: bytes | None) -> str | None:
    """One line saying the CA changed under agents that trusted the old one (its `ca/` folder was
    deleted or damaged and a new CA made); None when nothing changed or nothing was given before."""
    if given_before is None or current is None or given_before.strip() == current.strip():
        return None
    return (
        f"the proxy's CA in {home.ca_dir} is new (the old one was deleted, damaged or moved away): agents "
        f"and trust stores that trusted the old CA fail TLS through the proxy until they trust the new "
        f"{ca_cert_path(home)} (`firewall run` gives its agents the new one)"
    )


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
