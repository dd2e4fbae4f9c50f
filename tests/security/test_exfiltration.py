"""The exfiltration guard end to end: a vault value planted in 20 places of outgoing requests to a
host that allows everything is blocked every time, and the value shows up nowhere it should not.

The agent is a real client (httpx) under the real `firewall run`; it reads the key from a file it
"found" (never from its environment or arguments). A control run sends the same 20 requests with a
value that is not in the vault: all pass, so the policy alone would have let every one through.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest

from firewall.redaction import SecretIndex
from tests.security.support import hostile_upstream

SCRIPT = Path(__file__).parent / "scripts" / "exfil_client.py"
SECRET = "sk-proj-EXFILTRATE" + secrets.token_hex(12) + "xyzXYZ_9"
ATTEMPTS = 20

POLICY = """
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}
host localhost:{keyed} {{
    inject openai
    allow
}}
host localhost:{api} {{
    allow                      # anything at all: only the exfiltration guard stands in the way
}}
"""


@pytest.fixture(scope="module")
def setup(module_firewall, module_upstream, module_proxy, test_ca, tmp_path_factory):
    with hostile_upstream(test_ca, tmp_path_factory.mktemp("keyed")) as keyed:
        fw = module_firewall
        fw.add_secret("openai", SECRET, provider="openai")
        fw.apply(POLICY.format(keyed=keyed.port, api=module_upstream.port))
        yield fw, module_upstream, keyed


def _run_agent(fw, upstream, tmp_path: Path, value: str, env: dict | None = None) -> tuple[dict, object]:
    found = tmp_path / f"found-{secrets.token_hex(4)}.txt"
    found.write_text(value + "\n")
    out = tmp_path / f"out-{secrets.token_hex(4)}.json"
    done = fw.run(
        "run", "--agent", "thief", "--", sys.executable, str(SCRIPT), upstream.base_url, str(found), str(out), env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done


def test_the_credential_may_go_where_it_is_injected(setup, tmp_path):
    """The keyed host gets the credential anyway: sending it there is not exfiltration."""
    fw, _, keyed = setup
    script = tmp_path / "to_keyed.py"
    script.write_text(
        "import httpx, sys\n"
        f"r = httpx.post(sys.argv[1] + '/echo', json={{'key': {SECRET!r}}}, headers={{'Authorization': 'Bearer x'}})\n"
        "print(r.status_code)\n"
    )
    before = len(keyed.seen)
    done = fw.run("run", "--agent", "thief", "--", sys.executable, str(script), keyed.base_url)
    assert done.stdout.strip() == "200", done.stderr
    assert keyed.seen[before].headers["authorization"] == f"Bearer {SECRET}"
    assert json.loads(keyed.seen[before].body) == {"key": SECRET}


def test_twenty_ways_to_send_a_vault_value_away_are_all_blocked(setup, tmp_path):
    fw, upstream, _ = setup
    decoy = "sk-proj-DECOY" + secrets.token_hex(12) + "abcABC_1"
    control, _ = _run_agent(fw, upstream, tmp_path, decoy)
    assert len(control["results"]) == ATTEMPTS
    assert {name: r["status"] for name, r in control["results"].items()} == dict.fromkeys(control["results"], 200)

    before = len(upstream.seen)
    leaky_parent = {"OPENAI_API_KEY": SECRET, "BUILD_NOTE": f"key={SECRET}"}  # the user's shell had it too
    attack, done = _run_agent(fw, upstream, tmp_path, SECRET, env=leaky_parent)
    statuses = {name: r["status"] for name, r in attack["results"].items()}
    assert statuses == dict.fromkeys(attack["results"], 403)
    assert {json.loads(r["body"])["error"]["type"] for r in attack["results"].values()} == {"exfiltration_blocked"}
    assert len(upstream.seen) == before  # not one reached the upstream

    fw.run("proxy", "stop", check=True)  # flush the audit log and close the proxy log
    rows = [r for r in fw.audit_rows() if r["agent"] == "thief"]
    assert [r["decision"] for r in rows].count("exfiltration") == ATTEMPTS
    assert {r["reason"] for r in rows if r["decision"] == "exfiltration"} == {"exfiltration"}

    # The value is nowhere: not in the audit database (file and WAL), its CLI output, the proxy's
    # log, any answer or error body the agent got, the agent's environment or command line.
    index = SecretIndex.build({"openai": SECRET})
    audit_json = fw.run("audit", "--json", "--limit", "1000000", check=True).stdout
    places = {
        "audit database": b"".join(p.read_bytes() for p in fw.home.glob("firewall.db*")),
        "firewall audit --json": audit_json.encode(),
        "proxy log": (fw.home / "run" / "proxy.log").read_bytes(),
        "answers to the agent": json.dumps(attack["results"]).encode(),
        "agent environment": "\n".join(attack["environ"]).encode(),
        "agent command line": "\n".join(attack["cmdline"]).encode(),
        "firewall run output": (done.stdout + done.stderr).encode(),
    }
    for place, data in places.items():
        assert SECRET.encode() not in data, place
        assert index.find(data) == (), f"{place} holds an encoded form of the secret"
    env = dict(line.split("=", 1) for line in attack["environ"] if "=" in line)
    assert env["OPENAI_API_KEY"] != SECRET and "BUILD_NOTE" not in env
    assert not any(name.startswith("FIREWALL_") for name in env)
