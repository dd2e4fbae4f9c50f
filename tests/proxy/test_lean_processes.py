"""What a running proxy and its audit writer child import (structural checks, no timings).

Every module a process loads stays in its memory for as long as it runs (docs/performance.md,
"Memory"). Read from the real processes with `PYTHONPROFILEIMPORTTIME=1` (what `python -X
importtime` does), whose lines go to the proxy's stderr, which its audit child shares.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from firewall.proxy.settings import ProxySettings
from firewall.state.home import open_home
from tests.cli.test_lean_imports import imported
from tests.security.support import Agent, mint_token, proxy_ca, request_bytes
from tests.support.fixtures import Firewall, poll
from tests.support.upstream import Upstream

# What no proxy needs to serve requests: mitmproxy's onboarding app (Flask and what it brings), the
# HTTP client of token refreshes (httpx: loaded by the first refresh), the policy parser (a proxy
# loads compiled policies), the migrations' sqlite_utils, and the command line's packages.
PROXY_NEVER = (
    "flask",
    "werkzeug",
    "jinja2",
    "markupsafe",
    "httpx",
    "httpcore",
    "anyio",
    "lark",
    "sqlite_utils",
    "click",
    "pluggy",
    "dateutil",
    "typer",
    "rich",
    "pydantic",
    "limits",  # only for a shared limits store (redis://); memory:// is counted in-process
)


def _import_lines(lines: list[str]) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in lines
        if line.startswith("import time:") and "|" in line
    }


def test_a_proxy_serving_requests_loads_nothing_it_does_not_use(
    firewall: Firewall, upstream: Upstream, upstream_ca_file: Path, tmp_path: Path
):
    """The proxy process as `firewall proxy start` starts it (`python -m firewall.proxy`), serving
    a request that is decided, injected nothing, relayed and written to the audit log."""
    firewall.apply(f"default block\nhost localhost:{upstream.port} {{\n    allow GET /**\n}}\n")
    home = open_home(firewall.home)
    state_file = tmp_path / "proxy.json"
    settings = ProxySettings(home=home, port=0, state_file=state_file, upstream_ca=upstream_ca_file)
    env = {**firewall.env, "PYTHONPROFILEIMPORTTIME": "1"}  # the proxy and its audit child
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as sink:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "firewall.proxy", *settings.to_argv()], stderr=sink, env=env, start_new_session=True
        )
    try:
        written = poll(lambda: [state_file.read_text()] if state_file.exists() else [], bool, 60, "the state file")
        state = json.loads(written[0])
        agent = Agent(state["port"], "lean", mint_token(firewall, "lean"), proxy_ca(firewall))
        target = f"localhost:{upstream.port}"
        assert agent.https(target, request_bytes("GET", "/v1/models", target)).status == 200
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)
    assert [row["decision"] for row in firewall.audit_rows()] == ["allow"]  # the child wrote it
    loaded = _import_lines(stderr.read_text().splitlines())
    assert {"firewall", "mitmproxy", "sqlite3"} <= loaded
    assert loaded.isdisjoint(PROXY_NEVER), sorted(loaded & set(PROXY_NEVER))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import firewall.proxy.server", {"flask", "werkzeug"}),  # mitmproxy's addons package, whole
        (  # the first token refresh or retry
            "import certifi, pathlib; from firewall.proxy.upstream_client import upstream_client as client; "
            "client(pathlib.Path(certifi.where())).timeout",
            {"httpx", "httpcore"},
        ),
        ("import firewall.state.db as d, sys; d.open_database(d.Path(sys.argv[1]))", {"sqlite_utils", "click"}),
        ("import firewall.policy as p; p.compile_source", {"lark"}),
    ],
)
def test_control_what_loads_them_is_seen_loading_them(code: str, expected: set[str], tmp_path: Path):
    """The check above is not vacuous: the same reading sees each package when something loads it."""
    assert expected <= imported(["-c", code, str(tmp_path / "x.db")])


def test_the_proxy_skips_mitmproxys_default_addons_and_they_still_load_when_asked_for():
    """`skip_default_addons` (firewall/proxy/lean.py): the firewall's master without the onboarding
    app; mitmproxy's own `default_addons()` (DumpMaster's) still works in the same process."""
    code = (
        "import sys\n"
        "from firewall.proxy.lean import skip_default_addons\n"
        "skip_default_addons()\n"
        "import firewall.proxy.server, firewall.proxy.master\n"
        "assert 'flask' not in sys.modules, 'flask loaded'\n"
        "from firewall.proxy.master import build_master\n"
        "from mitmproxy.tools.dump import DumpMaster\n"
        "from mitmproxy import addons\n"
        "names = {type(a).__name__ for a in addons.default_addons()}\n"
        "assert {'Onboarding', 'Proxyserver', 'TlsConfig'} <= names, names\n"
        "assert 'flask' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
