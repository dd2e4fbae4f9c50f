"""The shortest path through the whole firewall: apply, start, run curl, read the audit log."""

import json
import time
from pathlib import Path

from tests.support.fixtures import REAL_KEY


def audit_children(database: Path) -> list[int]:
    """Pids of the audit writer processes (`python -m firewall.audit.child DB`) writing `database`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # a process that just ended
        if b"firewall.audit.child" in args and str(database).encode() in args:
            pids.append(int(cmdline.parent.name))
    return pids


def test_curl_through_the_proxy_gets_the_real_key_and_the_audit_row(firewall, upstream, proxy):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(f"""
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}
host localhost:{upstream.port} {{
    inject openai
    block /v1/files/**
    allow GET
}}
""")
    result = firewall.run(
        "run", "--agent", "smoke", "--", "curl", "-s", "-w", "\\n%{http_code}", f"{upstream.base_url}/v1/models"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("200")
    assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"

    blocked = firewall.run(
        "run", "--agent", "smoke", "--", "curl", "-s", "-w", "\\n%{http_code}", f"{upstream.base_url}/v1/files/x"
    )
    assert blocked.stdout.strip().endswith("403")
    assert '"policy_blocked"' in blocked.stdout
    workers = len(json.loads(firewall.run("proxy", "status", "--json", check=True).stdout)["workers"])
    assert len(audit_children(firewall.home / "firewall.db")) == workers  # each proxy process's audit writer
    proxy.stop()
    deadline = time.monotonic() + 10
    while audit_children(firewall.home / "firewall.db"):
        assert time.monotonic() < deadline, "the audit writer process outlived `proxy stop`"
        time.sleep(0.05)
    rows = firewall.audit_rows()
    assert [(r["decision"], r["path"], r["agent"]) for r in rows] == [
        ("allow", "/v1/models", "smoke"),
        ("block", "/v1/files/x", "smoke"),
    ]
