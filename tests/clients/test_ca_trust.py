"""Every runtime trusts the firewall's CA under `firewall run`, whatever the environment had.

The parent environment points every CA variable (and wget's WGETRC) at a wrong bundle, as a machine
that sets them to its own roots does. Each real client, under an isolated run, must still trust the
proxy's certificates. The control inside the same run: the client again with its own variable set
back to the wrong bundle fails on the certificate, so the variable is what the client reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trustme

from firewall.run import client_files
from firewall.run import environment as run_env
from tests.support.fixtures import REAL_KEY

SCRIPTS = Path(__file__).parent / "scripts"
PIP_CLEAN = ["env", "-u", "PIP_FIND_LINKS", "-u", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE=/dev/null"]
HTTPLIB2 = (
    "import httplib2, sys; r, body = httplib2.Http(timeout=20).request(sys.argv[1]); "
    "print(r.status); sys.exit(r.status != 200)"
)
REQUESTS = "import requests, sys; r = requests.get(sys.argv[1], timeout=20); print(r.status_code); r.raise_for_status()"
HTTPX = "import httpx, sys; r = httpx.get(sys.argv[1], timeout=20); print(r.status_code); r.raise_for_status()"
NODE_HTTPS = (
    "require('https').get(process.argv[1], (r) => { console.log(r.statusCode); r.resume(); })"
    ".on('error', (e) => { console.error(String(e)); process.exit(1); })"
)

# client: (the variables its control sets back to the wrong bundle ("-": removes them), command)
CLIENTS = {
    "curl": ("CURL_CA_BUNDLE", lambda up, si: ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", up]),
    "wget": ("WGETRC", lambda up, si: ["wget", "-nv", "-O", "-", "--tries=1", up]),
    "git": ("GIT_SSL_CAINFO", lambda up, si: ["git", "ls-remote", si.repo_url]),
    # pip's own --cert loses to requests' REQUESTS_CA_BUNDLE, and pip 24.2+ verifies with the
    # system's trust (truststore: SSL_CERT_FILE) first: all three must name the bundle
    "pip": (
        "PIP_CERT,REQUESTS_CA_BUNDLE,SSL_CERT_FILE",
        lambda up, si: [
            *PIP_CLEAN,
            *(
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "--retries",
                "0",
                "--timeout",
                "10",
            ),
            *("--index-url", si.index_url, "-d", str(si.root / "downloads"), "fwprobe"),
        ],
    ),
    "httplib2": ("HTTPLIB2_CA_CERTS", lambda up, si: [sys.executable, "-c", HTTPLIB2, up]),
    "requests": ("REQUESTS_CA_BUNDLE", lambda up, si: [sys.executable, "-c", REQUESTS, up]),
    "httpx": ("SSL_CERT_FILE", lambda up, si: [sys.executable, "-c", HTTPX, up]),
    "node": ("NODE_EXTRA_CA_CERTS", lambda up, si: ["node", "-e", NODE_HTTPS, up]),
}
CERTIFICATE_ERRORS = ("certificate", "CERTIFICATE", "SSL", "self-signed", "issuer")


@pytest.fixture(scope="module")
def wrong(tmp_path_factory) -> dict[str, str]:
    """The parent's environment: every CA variable at another CA's bundle, and a wgetrc of the
    user's with a wrong `ca_certificate` and a setting of its own that must survive."""
    directory = tmp_path_factory.mktemp("wrong")
    bundle = directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    wgetrc = directory / "wgetrc"
    wgetrc.write_text(f"ca_certificate = {bundle}\nuser_agent = kept-by-firewall-run\n")
    return {
        **dict.fromkeys((*run_env.BUNDLE_VARIABLES, run_env.NODE_EXTRA_CA), str(bundle)),
        "WGETRC": str(wgetrc),
        "WRONG_BUNDLE": str(bundle),
    }


@pytest.mark.clients
@pytest.mark.parametrize("client", CLIENTS)
def test_client_trusts_the_proxy_whatever_the_environment_had(
    matrix, module_upstream, stand_in, wrong, client, tmp_path
):
    if client == "node" and not _installed("node"):
        pytest.skip("node is not installed")
    variables, command = CLIENTS[client]
    out = tmp_path / "out.json"
    url = f"{module_upstream.base_url}/v1/models"
    control = {"node": "-", "wget": wrong["WGETRC"]}.get(client, wrong["WRONG_BUNDLE"])
    upstream = stand_in if client in ("git", "pip") else module_upstream
    before = len(upstream.seen)
    done = matrix.run(
        "run",
        "--agent",
        f"ca-{client}",
        "--",
        sys.executable,
        str(SCRIPTS / "twice.py"),
        str(out),
        variables,
        control,
        "--",
        *command(url, stand_in),
        env=wrong,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    given, changed = result["given"], result["changed"]
    assert given["code"] == 0, given
    assert changed["code"] != 0, changed  # the control: this variable is what it reads
    assert any(word in changed["stderr"] + changed["stdout"] for word in CERTIFICATE_ERRORS), changed
    assert len(upstream.seen) > before
    assert upstream.seen[before].headers["authorization"] == f"Bearer {REAL_KEY}"
    assert REAL_KEY not in out.read_text()
    for name in variables.split(","):
        if name != "WGETRC":
            assert result["env"][name] != wrong["WRONG_BUNDLE"], name
    if client == "wget":
        assert upstream.seen[before].headers["user-agent"] == "kept-by-firewall-run"  # the user's setting


def test_every_bundle_variable_names_the_bundle_whatever_the_parent_had(tmp_path):
    bundle, ca_cert = tmp_path / "bundle.pem", tmp_path / "ca.pem"
    parent = dict.fromkeys((*run_env.BUNDLE_VARIABLES, run_env.NODE_EXTRA_CA), "/etc/ssl/certs/ca-certificates.crt")
    parent["NODE_OPTIONS"] = "--max-old-space-size=64"
    env = run_env.child_environment(
        parent,
        proxy="http://a:t@127.0.0.1:1",
        bundle=bundle,
        ca_cert=ca_cert,
        placeholders={},
        wgetrc=tmp_path / "wgetrc",
        node_preload=Path("/opt/with space/preload.js"),
    )
    assert {name: env[name] for name in run_env.BUNDLE_VARIABLES} == dict.fromkeys(
        run_env.BUNDLE_VARIABLES, str(bundle)
    )
    assert env[run_env.NODE_EXTRA_CA] == str(ca_cert)
    assert env["WGETRC"] == str(tmp_path / "wgetrc")
    assert env["NODE_OPTIONS"] == '--require "/opt/with space/preload.js" --max-old-space-size=64'
    # the control: without the run's files, nothing is set for them
    bare = run_env.child_environment({}, proxy="http://x", bundle=bundle, ca_cert=ca_cert, placeholders={})
    assert "WGETRC" not in bare and "NODE_OPTIONS" not in bare


def test_wgetrc_keeps_the_users_settings_and_adds_the_runs(tmp_path):
    own = tmp_path / "mine"
    own.write_text("user_agent = mine\nca_certificate = /wrong.pem\nuse_proxy = off\n")
    path = client_files.write_wgetrc(tmp_path / "run-wgetrc", {"WGETRC": str(own)}, Path("/b.pem"), "http://p:1")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["user_agent = mine", "ca_certificate = /wrong.pem", "use_proxy = off"]
    # a later setting wins in a wgetrc: the run's come last
    assert lines.index("ca_certificate = /b.pem") > 1 and lines.index("use_proxy = on") > 2
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the run's proxy token
    # ~/.wgetrc when WGETRC is not set; none at all is fine
    (tmp_path / ".wgetrc").write_text("tries = 2\n")
    assert (
        "tries = 2" in client_files.write_wgetrc(tmp_path / "b", {"HOME": str(tmp_path)}, Path("/b"), "p").read_text()
    )
    assert client_files.write_wgetrc(tmp_path / "c", {}, Path("/b"), "p").read_text().startswith("# added")


def _installed(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None
