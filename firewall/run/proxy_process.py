"""Starting, finding and stopping proxy processes (without importing mitmproxy), for the CLI
and `firewall run`: this never runs inside a proxy.

A proxy announces itself with a state file (pid, port) once it listens (proxy/state_file.py
writes and reads it). The shared proxy uses `run/proxy.json`; a proxy that `firewall run`
starts for one command uses a file of its own, so no other agent finds it. Stopping is
proxy/stopping.py's: the proxy reads its half of that protocol there.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from firewall.proxy.settings import ProxySettings
from firewall.proxy.state_file import ProxyInfo, read_info
from firewall.proxy.stopping import (  # noqa: F401  (callers find the whole of a proxy's life here)
    DEFAULT_GRACE,
    MAX_GRACE,
    STOP_TIMEOUT,
    stop,
)
from firewall.state.home import Home
from firewall.vault import handoff

START_TIMEOUT = 20.0


class ProxyProcessError(Exception):
    pass


def shared_state_file(home: Home) -> Path:
    return home.run_dir / "proxy.json"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def running_proxy(home: Home) -> ProxyInfo | None:
    info = read_info(shared_state_file(home))
    return info if info is not None and _listening(info.port) else None


@dataclass(frozen=True)
class Starting:
    """A proxy process that was started and has not said yet that it listens."""

    process: subprocess.Popen
    state_file: Path
    log_file: Path
    log_offset: int
    port: int | None = None  # known at once when the proxy serves on a socket bound for it
    pinned_policy: bool = False
    limits_storage: str = "memory://"
    stderr: list[bytes] = field(default_factory=list)  # what the proxy wrote there, once it is drained
    drainer: list[threading.Thread] = field(default_factory=list)


def bind_listener(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: any free port) for a proxy process to serve on.

    Connections to it wait in its queue until the proxy accepts them, so the proxy's clients
    can start before the proxy is up."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
    except OSError as exc:
        listener.close()
        raise ProxyProcessError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    return listener


def start_background(settings: ProxySettings) -> tuple[ProxyInfo, subprocess.Popen]:
    """Start the proxy in the foreground of a detached process and wait until it listens."""
    return wait_listening(spawn_background(settings))


def spawn_background(
    settings: ProxySettings, *, env: dict[str, str] | None = None, listener: socket.socket | None = None
) -> Starting:
    """Start the proxy process and return at once: the caller can do its own work while the
    proxy starts (importing mitmproxy takes most of a second), then `wait_listening`.

    Its log goes to `settings.log_file`, else to the state folder's `run/proxy.log`. With
    `listener` (see `bind_listener`), the proxy serves on that socket, and this process's copy
    of it is closed. With `settings.workers` > 1 the process started is the supervisor of that
    many proxy processes (supervisor.py); its state file names them."""
    home = settings.home
    settings.state_file.unlink(missing_ok=True)
    log_file = settings.log_file or home.run_dir / "proxy.log"
    settings = replace(settings, log_file=log_file, listen_fd=listener.fileno() if listener is not None else None)
    command = [sys.executable, "-m", "firewall.proxy", *settings.to_argv()]
    pass_fds = (listener.fileno(),) if listener is not None else ()
    # The passphrase goes on the proxy's stdin, never into its environment (readable in /proc).
    child_env, passphrase = handoff.for_child(dict(env if env is not None else os.environ))
    child_env["FIREWALL_HOME"] = str(home.root)
    log_offset = log_file.stat().st_size if log_file.exists() else 0
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if passphrase else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    finally:
        port_bound = listener.getsockname()[1] if listener is not None else None
        if listener is not None:
            listener.close()  # the proxy holds it now: when it exits, connections are refused
    if passphrase:
        process.stdin.write(passphrase)
        process.stdin.close()
    pinned = settings.pinned_policy is not None
    return Starting(process, settings.state_file, log_file, log_offset, port_bound, pinned, settings.limits_storage)


def accepting(starting: Starting) -> ProxyInfo:
    """The proxy a `Starting` on a bound listener is, without waiting for it to be up: its
    socket already accepts connections, which it serves once it is (see `bind_listener`)."""
    assert starting.port is not None, "only a proxy started on a bound listener"
    # Read its stderr from now on: a pipe nobody reads would block the proxy once full.
    drainer = threading.Thread(target=_drain, args=(starting,), name="proxy-stderr", daemon=True)
    drainer.start()
    starting.drainer.append(drainer)
    return ProxyInfo(
        pid=starting.process.pid,
        port=starting.port,
        started=time.time(),
        pinned_policy=starting.pinned_policy,
        limits_storage=starting.limits_storage,
        state_file=starting.state_file,
    )


def failure(starting: Starting) -> str | None:
    """Why the proxy process failed, once it has ended (None while it runs, or if it ended well).

    A proxy that fails says why on stderr; one that was stopped says nothing there. (A failing
    proxy may still be exiting when it is stopped, so the exit code alone does not tell.)"""
    code = starting.process.poll()
    if code is None:
        return None
    pipe = starting.process.stderr
    if starting.drainer:
        starting.drainer[0].join(timeout=5)
    elif pipe is not None and not pipe.closed:  # not drained: read it all now
        _drain(starting)
    stderr = b"".join(starting.stderr).decode(errors="replace").strip()
    if not stderr and code in (0, -signal.SIGTERM):
        return None
    return _start_failure(stderr, starting.log_file, starting.log_offset).replace("failed to start", "failed")


def _drain(starting: Starting, keep: int = 65536) -> None:
    """Read the proxy's stderr until it closes, keeping the last `keep` bytes."""
    pipe = starting.process.stderr
    try:
        while chunk := pipe.read1(4096):
            starting.stderr.append(chunk)
            while sum(map(len, starting.stderr)) > keep and len(starting.stderr) > 1:
                starting.stderr.pop(0)
    except (OSError, ValueError):  # closed under us
        pass
    finally:
        pipe.close()


def wait_listening(starting: Starting) -> tuple[ProxyInfo, subprocess.Popen]:
    """Wait until the proxy wrote its state file (it listens), or say why it did not start."""
    process, state_file, log_file = starting.process, starting.state_file, starting.log_file
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = read_info(state_file)
        if info is not None and info.pid == process.pid:
            process.stderr.close()
            return info, process
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace").strip()
            raise ProxyProcessError(_start_failure(stderr, log_file, starting.log_offset))
        time.sleep(0.005)
    process.kill()
    process.wait(timeout=5)
    raise ProxyProcessError(f"the proxy did not start listening within {START_TIMEOUT:.0f}s; see {log_file}")


def abandon(starting: Starting) -> None:
    """Stop a proxy that was started but is no longer wanted (whether or not it listens yet)."""
    process = starting.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stderr is not None:
        process.stderr.close()
    starting.state_file.unlink(missing_ok=True)


# mitmproxy's own last word when an addon logged an error at start-up: the error itself is in the log.
_MITMPROXY_STARTUP_ERROR = "Error logged during startup"


def _start_failure(stderr: str, log_file: Path, offset: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and _MITMPROXY_STARTUP_ERROR not in line]
    if not lines and log_file.exists():
        with log_file.open("rb") as handle:
            handle.seek(offset)
            logged = [line for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
        # A traceback's last line names the exception; past it come only lines about its consequences.
        raised = [line for line in logged if re.match(r"^\w+(Error|Exception): ", line)]
        lines = [f"{raised[-1]} (details in {log_file})"] if raised else logged
    detail = lines[-1] if lines else f"no message; see {log_file}"
    if "No space left" in detail or "disk is full" in detail:
        detail += "; free some space and run it again"
    return f"the proxy failed to start: {detail.removeprefix('error: ')}"
