"""The agent is the same OS user: what `firewall run` keeps from it.

The child gets none of the firewall's own variables. In passphrase mode the passphrase lives only
in the memory of the firewall's processes: not on disk, not in the child's environment, not in
any process environment or command line the child can read under /proc, so the child cannot
decrypt the vault with anything it can read. In key-file mode it can: that is why passphrase
mode is the one to use when agents are not isolated (docs/threat-model.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.fixtures import REAL_KEY, Firewall

THIEF = Path(__file__).parent / "scripts" / "vault_thief.py"
PASSPHRASE = "correct horse battery staple 7f3a9c"
POLICY = """
host localhost:1 {
    allow GET
}
"""


def _environment_of_child(fw, extra: dict[str, str]) -> dict[str, str]:
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    done = fw.run("run", "--agent", "ci", "--", sys.executable, "-c", code, env=extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_child_gets_none_of_the_firewalls_variables(firewall):
    firewall.apply(POLICY)
    env = _environment_of_child(firewall, {"FIREWALL_DEBUG": "1", "FIREWALL_ANYTHING": "x", "KEEP_ME": "yes"})
    assert [name for name in env if name.startswith("FIREWALL_")] == []
    assert env["KEEP_ME"] == "yes" and env["HTTPS_PROXY"].startswith("http://ci:")


def _steal(fw, tmp_path: Path, env: dict[str, str], *run_args: str) -> dict:
    out = tmp_path / "stolen.json"
    done = fw.run(
        "run",
        *run_args,
        "--agent",
        "thief",
        "--",
        sys.executable,
        str(THIEF),
        str(fw.home),
        str(out),
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_in_key_file_mode_an_agent_can_decrypt_the_vault(firewall, tmp_path):
    """Without isolation a same-user agent reads master.key (use passphrase mode then); in `firewall
    run`'s sandbox (the default) the state folder is hidden and it finds nothing to decrypt."""
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(POLICY)
    stolen = _steal(firewall, tmp_path, {}, "--no-isolate")
    assert stolen["decrypted"] == {"openai": REAL_KEY}
    isolated = _steal(firewall, tmp_path, {})
    assert not isolated["decrypted"], isolated["decrypted"]
    assert REAL_KEY not in json.dumps(isolated)


def _passphrase_firewall(home: Path) -> Firewall:
    """A state folder made by `firewall init` in passphrase mode: the key is derived, never stored."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "PROXY" not in k.upper()}
    env["FIREWALL_HOME"] = str(home)
    fw = Firewall(home, env)
    fw.run("init", env={"FIREWALL_PASSPHRASE": PASSPHRASE}, check=True)
    return fw


@pytest.mark.parametrize("shared_proxy", [False, True], ids=["proxy started by run", "shared proxy"])
def test_in_passphrase_mode_an_agent_cannot_decrypt_the_vault(tmp_path, upstream_ca_file, shared_proxy):
    fw = _passphrase_firewall(tmp_path / "home")
    with_passphrase = {"FIREWALL_PASSPHRASE": PASSPHRASE}
    fw.run(
        "secrets",
        "add",
        "openai",
        "--provider",
        "openai",
        "--stdin",
        input=REAL_KEY + "\n",
        env=with_passphrase,
        check=True,
    )
    fw.run("policy", "apply", str(fw.write_policy("p.policy", POLICY)), env=with_passphrase, check=True)
    if shared_proxy:
        fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), env=with_passphrase, check=True)
    try:
        stolen = _steal(fw, tmp_path, with_passphrase, "--no-isolate")  # isolated, it sees even less
    finally:
        if shared_proxy:
            fw.run("proxy", "stop")
    assert stolen["decrypted"] is None and stolen["attempts"] > 1
    # It did read where the passphrase used to be: the environment of `firewall run` and of the proxy.
    cmdlines = {name: text for name, text in stolen["read"].items() if name.endswith("/cmdline")}

    def role(cmdline: str) -> str | None:
        if "\0proxy\0start" in cmdline or "\0firewall.proxy\0" in cmdline:
            return "proxy"
        return "run" if "\0firewall\0run\0" in cmdline else None

    looked_at = {
        role(text)
        for name, text in cmdlines.items()
        if role(text) and str(fw.home) in stolen["read"].get(name.replace("/cmdline", "/environ"), "")
    }
    assert looked_at == {"proxy", "run"}
    assert not (fw.home / "master.key").exists()
    leaks = [name for name, text in stolen["read"].items() if PASSPHRASE in text or REAL_KEY in text]
    assert leaks == []
    assert "FIREWALL_" not in stolen["read"][f"/proc/{stolen['pid']}/environ"]
