"""The state folder at rest: owner-only, loose key files refused with a fix, the CA key kept home.

Tests run as whatever user CI gives (often root, which reads everything anyway), so they check
the permission bits the firewall sets and refuses, not what another user could open.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.support.fixtures import REAL_KEY

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

PLAIN_POLICY = """
host localhost:1 {
    allow GET
}
"""


def _modes(root: Path) -> dict[str, int]:
    modes = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        modes[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def test_after_a_whole_session_every_file_and_folder_is_owner_only(firewall, upstream, upstream_ca_file, tmp_path):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(POLICY.format(port=upstream.port))
    firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), check=True)
    done = firewall.run(
        "run",
        "--agent",
        "ci",
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"{upstream.base_url}/v1/models",
    )
    assert done.stdout == "200", done.stderr
    private = firewall.run(
        "run",
        "--agent",
        "ci",
        "--policy",
        str(firewall.write_policy("p.policy", POLICY.format(port=upstream.port))),
        "--upstream-ca",
        str(upstream_ca_file),
        "--",
        "true",
    )
    assert private.returncode == 0, private.stderr
    firewall.run("proxy", "stop", check=True)
    firewall.run("audit", "verify")
    modes = _modes(firewall.home)
    assert len(modes) > 8, modes  # the database, vault, CA, run files...
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert loose == {}


@pytest.mark.parametrize("relative", ["vault.json", "master.key"])
def test_a_vault_or_key_file_others_can_read_is_refused_at_start_with_the_fix(firewall, relative):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(PLAIN_POLICY)
    path = firewall.home / relative
    path.chmod(0o644)
    started = firewall.run("proxy", "start", "--port", "0")
    ran = firewall.run("run", "--agent", "ci", "--", "true")
    for result in (started, ran):
        assert result.returncode != 0
        assert f"chmod 600 {path}" in result.stderr, result.stderr
    assert json.loads(firewall.run("proxy", "status", "--json").stdout)["running"] is False


@pytest.mark.parametrize("name", ["mitmproxy-ca.pem", "mitmproxy-ca.p12"])
def test_a_ca_key_others_can_read_is_refused_at_start_with_the_fix(firewall, upstream_ca_file, name):
    firewall.run("proxy", "start", "--port", "0", check=True)  # creates the CA
    firewall.run("proxy", "stop", check=True)
    path = firewall.home / "ca" / name
    path.chmod(0o640)
    started = firewall.run("proxy", "start", "--port", "0")
    assert started.returncode != 0 and f"chmod 600 {path}" in started.stderr, started.stderr


def test_the_ca_private_key_never_leaves_the_state_folder(firewall, upstream, upstream_ca_file, tmp_path):
    firewall.apply(PLAIN_POLICY)
    out = tmp_path / "child.json"
    probe = (
        "import json, os, sys; "
        "paths = {k: v for k, v in os.environ.items() if v.startswith('/') and os.path.isfile(v)}; "
        "json.dump({'env': dict(os.environ), 'files': {k: open(v, errors='replace').read() "
        "for k, v in paths.items()}}, "
        "open(sys.argv[1], 'w'))"
    )
    done = firewall.run(
        "run", "--agent", "ci", "--upstream-ca", str(upstream_ca_file), "--", sys.executable, "-c", probe, str(out)
    )
    assert done.returncode == 0, done.stderr
    key_pem = (firewall.home / "ca" / "mitmproxy-ca.pem").read_text()
    key_body = key_pem.split("PRIVATE KEY-----")[1].split("-----END")[0].strip().splitlines()[1]  # one line of it
    assert len(key_body) == 64  # a whole line of the key (a P-256 key has three)
    child = json.loads(out.read_text())
    assert {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"} <= set(child["files"])
    for variable, text in child["files"].items():
        assert "PRIVATE KEY" not in text and key_body not in text, variable
    assert not any("/ca/" in value for value in child["env"].values())
    # No private key in the state folder outside ca/ but the audit checkpoints' own signing key
    # (docs/audit.md); the CA's key nowhere else in the test's folders.
    for path in [*firewall.home.rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file() and firewall.home / "ca" not in path.parents:
            data = path.read_bytes()
            assert key_body.encode() not in data, path
            if path != firewall.home / "audit-signing.key":
                assert firewall.home not in path.parents or b"PRIVATE KEY" not in data, path
    assert stat.S_IMODE(os.stat(firewall.home / "ca").st_mode) == 0o700


def test_a_loosened_state_folder_and_database_are_made_owner_only_again(firewall):
    """Not secret keys, so tightened rather than refused: the folder and the audit database."""
    firewall.apply(PLAIN_POLICY)
    firewall.home.chmod(0o755)
    (firewall.home / "firewall.db").chmod(0o644)
    firewall.run("audit", "--json", check=True)
    assert stat.S_IMODE(firewall.home.stat().st_mode) == 0o700
    assert stat.S_IMODE((firewall.home / "firewall.db").stat().st_mode) == 0o600
