"""A proxy process's settings, and their one spelling on its command line.

The process that starts a proxy (`firewall run`, `firewall proxy start`) builds `ProxySettings`
and passes `to_argv()`; the proxy process (`python -m firewall.proxy`) reads them back with
`from_argv`. No mitmproxy and no Typer here: the starting side loads neither.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from firewall.state.home import Home

LIMITS_TIMEOUT = 0.25  # seconds a shared limits store has, for all of one request's counting
AUDIT_FULL_ACTIONS = ("refuse", "allow")
MAX_WORKERS = 64


WORKERS_ENV = "FIREWALL_PROXY_WORKERS"


def default_workers() -> int:
    """`proxy start`'s default number of workers: $FIREWALL_PROXY_WORKERS if set (SettingsError
    if it is not a number), else one per core this process may run on."""
    if (text := os.environ.get(WORKERS_ENV)) is not None:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{WORKERS_ENV} must be a number of workers, not {text!r}") from None
    try:
        return min(MAX_WORKERS, max(1, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return min(MAX_WORKERS, max(1, os.cpu_count() or 1))


class SettingsError(ValueError):
    """Settings no proxy can run with; worded for the user."""


@dataclass(frozen=True)
class ProxySettings:
    home: Home
    port: int
    state_file: Path
    log_file: Path | None = None  # None: stderr (a proxy started in the background always has one)
    upstream_ca: Path | None = None
    limits_storage: str = "memory://"
    limits_timeout: float = LIMITS_TIMEOUT  # seconds a limits store has to answer before a 503 limits_unavailable
    pinned_policy: Path | None = None  # compiled JSON for this proxy alone (`firewall run --policy`)
    listen_fd: int | None = None  # a listening socket the starting process bound (see listen_on_inherited)
    audit: bool = True  # False only for benchmarks (`--audit off`): records are counted, not written
    audit_full_action: str = "refuse"  # past the audit backlog bound: refuse new requests (503), or allow them
    workers: int = 1  # more than 1: this process supervises that many proxy processes (supervisor.py)
    # Set by a supervisor for each of its workers: which one it is, where the shared counts are
    # served (counts.py), and (worker 0 only) where the budgets snapshot goes.
    worker: int | None = None
    counts_socket: Path | None = None
    budgets_file: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"--port must be 0 to 65535, not {self.port}")
        if not self.limits_timeout > 0:
            raise SettingsError(f"--limits-timeout must be more than 0 seconds, not {self.limits_timeout}")
        if self.audit_full_action not in AUDIT_FULL_ACTIONS:
            raise SettingsError(f"--audit-full-action is `refuse` or `allow`, not {self.audit_full_action!r}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise SettingsError(f"--workers must be 1 to {MAX_WORKERS}, not {self.workers}")
        if (self.worker is None) != (self.counts_socket is None):
            raise SettingsError("--worker and --counts-socket go together (a supervisor passes both)")

    def to_argv(self) -> list[str]:
        """The proxy process's command line arguments (after `python -m firewall.proxy`)."""
        argv = ["--port", str(self.port), "--state-file", str(self.state_file)]
        argv += ["--limits-storage", self.limits_storage, "--limits-timeout", repr(self.limits_timeout)]
        if self.log_file is not None:
            argv += ["--log-file", str(self.log_file)]
        if self.upstream_ca is not None:
            argv += ["--upstream-ca", str(self.upstream_ca)]
        if self.pinned_policy is not None:
            argv += ["--pinned-policy", str(self.pinned_policy)]
        if self.listen_fd is not None:
            argv += ["--listen-fd", str(self.listen_fd)]
        if not self.audit:  # benchmarks only: bench/audit_log.py
            argv += ["--audit", "off"]
        if self.audit_full_action != "refuse":
            argv += ["--audit-full-action", self.audit_full_action]
        if self.workers != 1:
            argv += ["--workers", str(self.workers)]
        if self.worker is not None:
            argv += ["--worker", str(self.worker), "--counts-socket", str(self.counts_socket)]
        if self.budgets_file is not None:
            argv += ["--budgets-file", str(self.budgets_file)]
        return argv

    @classmethod
    def from_argv(cls, argv: list[str], home: Home) -> ProxySettings:
        """The settings `to_argv` wrote; SettingsError for anything else."""
        parsed = _parser().parse_args(argv)
        return cls(
            home=home,
            port=parsed.port,
            state_file=parsed.state_file,
            log_file=parsed.log_file,
            upstream_ca=parsed.upstream_ca,
            limits_storage=parsed.limits_storage,
            limits_timeout=parsed.limits_timeout,
            pinned_policy=parsed.pinned_policy,
            listen_fd=parsed.listen_fd,
            audit=parsed.audit == "on",
            audit_full_action=parsed.audit_full_action,
            workers=parsed.workers,
            worker=parsed.worker,
            counts_socket=parsed.counts_socket,
            budgets_file=parsed.budgets_file,
        )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise SettingsError(f"python -m firewall.proxy: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m firewall.proxy", add_help=False, allow_abbrev=False)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--log-file", type=Path)
    parser.add_argument("--upstream-ca", type=Path)
    parser.add_argument("--limits-storage", default="memory://")
    parser.add_argument("--limits-timeout", type=float, default=LIMITS_TIMEOUT)
    parser.add_argument("--pinned-policy", type=Path)
    parser.add_argument("--listen-fd", type=int)
    parser.add_argument("--audit", choices=("on", "off"), default="on")
    parser.add_argument("--audit-full-action", default="refuse")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker", type=int)
    parser.add_argument("--counts-socket", type=Path)
    parser.add_argument("--budgets-file", type=Path)
    return parser
