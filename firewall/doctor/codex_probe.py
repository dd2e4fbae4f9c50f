"""The Codex CLI's probe, run by the probe agent inside `firewall run`. Standard library only.

`codex exec` with a model provider of its own whose base URL is on the probe name: Codex's
own HTTP client (reqwest, rustls, CODEX_CA_CERTIFICATE or SSL_CERT_FILE, the proxy variables)
POSTs one turn to `https://probe.firewall.invalid/doctor/codex/responses`, which the proxy
answers itself with a whole Responses stream saying `firewall doctor probe: ok`
(proxy/addons/probe.py). On a failure, even with retries off, Codex prints only "Reconnecting...
waiting for network" and waits; so its output (with the three log lines below) is watched line by
line and its process group is killed as soon as the outcome shows, or at the deadline.
CODEX_HOME is a scratch folder: nothing of the user's Codex setup is read or written.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading
import time

PROBE_TEXT = "firewall doctor probe: ok"  # what the proxy's Responses answer says
DEADLINE = 30.0  # seconds for the whole probe, Codex's start-up included
PROVIDER = "firewall-doctor"
QUIET = ("plugins", "remote_plugin", "apps", "api_key_model_discovery", "in_app_updates")
# Codex says only "Connection failed: error sending request" for every transport failure, so the
# probe turns on three of its log lines (on stderr) that tell the causes apart:
LOG = "error,reqwest::connect=debug,rustls::client::tls13=trace,codex_http_client::client=debug"
PROXIED = "intercepts 'https://"  # reqwest::connect: "proxy(http://127.0.0.1:PORT/) intercepts 'URL'"
SERVER_CERT = "Server cert is"  # rustls: TLS through the tunnel reached the proxy's certificate
REQUEST_FAILED = "Request failed"  # codex_http_client: the request failed (is_connect=..., ...)
# Lines after which the outcome is known (the answer, or a failure whose cause is in the lines so far).
FINAL = (PROBE_TEXT, '"type":"turn.completed"', '"type":"turn.failed"', "Reconnecting", REQUEST_FAILED)


def argv(program: str, probe_url: str) -> list[str]:
    provider = (
        f'{{name="firewall doctor probe", base_url="{probe_url}/codex", wire_api="responses", '
        "request_max_retries=0, stream_max_retries=0, stream_idle_timeout_ms=10000}"
    )
    return [
        *(program, "exec", "--json", "--skip-git-repo-check", "--ephemeral", "--color", "never"),
        *("-c", f'model_provider="{PROVIDER}"', "-c", f"model_providers.{PROVIDER}={provider}"),
        # Nothing but the turn: no plugin sync (a git clone from github.com), no app, model or update checks.
        *(arg for feature in QUIET for arg in ("--disable", feature)),
        *("-m", "firewall-probe", "firewall doctor probe"),
    ]


def run(program: str, probe_url: str, deadline: float = DEADLINE) -> dict:
    """The probe's result, as the probe agent reports every runtime's."""
    with tempfile.TemporaryDirectory(prefix="firewall-doctor-codex-") as home:
        env = {**os.environ, "CODEX_HOME": home, "RUST_LOG": LOG}
        started = time.monotonic()
        child = subprocess.Popen(
            argv(program, probe_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        lines = _lines_until_known(child, started + deadline)
        code = child.poll()
        timed_out = code is None and not any(word in line for line in lines for word in FINAL)
        _stop(child)
    output = "".join(_telling(line) for line in lines)[-2000:]
    seconds = round(time.monotonic() - started, 2)
    if timed_out:
        said = f"no answer within {deadline:.0f} s\n{output}"
        return {"name": "codex", "result": "timeout", "output": said, "seconds": seconds}
    return {"name": "codex", "result": "exit", "code": code, "output": output, "seconds": seconds}


def _lines_until_known(child: subprocess.Popen, until: float) -> list[str]:
    """Codex's output up to the first line that settles the outcome, its exit, or `until`."""
    assert child.stdout is not None
    pending: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in child.stdout:
            pending.put(line)
        pending.put(None)

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    while (left := until - time.monotonic()) > 0:
        try:
            line = pending.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        lines.append(line)
        if any(word in line for word in FINAL):
            break
    return lines


def _telling(line: str) -> str:
    """The part of a line the doctor reads: a JSON event whole, a log line's message (after its
    spans), and only the log lines named above."""
    if line.startswith("{"):
        return line
    if SERVER_CERT in line:
        return f"{SERVER_CERT} [the proxy's certificate, not trusted unless the answer follows]\n"
    for marker in (PROXIED, REQUEST_FAILED):
        if marker in line:
            return marker + line.split(marker, 1)[1][:200].rstrip() + "\n"
    return "" if " TRACE " in line or " DEBUG " in line or " INFO " in line else line


def _stop(child: subprocess.Popen) -> None:
    """Codex and whatever it started: its own process group."""
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait(timeout=10)
