"""Serving a proxy in this process until it is stopped: `python -m firewall.proxy` and
`firewall proxy start --foreground` both end here, with the same errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from firewall.proxy.settings import ProxySettings


def serve_in_foreground(settings: ProxySettings) -> int:
    """Serve until stopped; the exit code. An error the proxy expects (a port in use, a damaged
    vault, a bad limits store, a full disk) is one line on stderr, which is the proxy's log
    when it runs in the background."""
    if settings.workers > 1:
        return _supervise_in_foreground(settings)
    from firewall.proxy.lean import skip_default_addons

    skip_default_addons()  # before mitmproxy's master is imported (lean.py)
    from firewall.proxy.limiter import LimiterConfigError
    from firewall.proxy.log_file import configure_logging
    from firewall.proxy.server import ProxyStartError, serve
    from firewall.state.home import StateError
    from firewall.state.policy_store import PolicyStoreError
    from firewall.vault import VaultError

    configure_logging(settings.log_file, settings.worker)
    expected = (ProxyStartError, LimiterConfigError, PolicyStoreError, StateError, VaultError, ValueError)
    return _exit_code(serve(settings), expected)


def _supervise_in_foreground(settings: ProxySettings) -> int:
    """`--workers N`: this process supervises N proxy processes (supervisor.py); no mitmproxy here."""
    from firewall.proxy.log_file import configure_logging
    from firewall.proxy.supervisor import SupervisorError, supervise

    configure_logging(settings.log_file, None)
    return _exit_code(supervise(settings), (SupervisorError,))


def _exit_code(main: Coroutine[Any, Any, None], expected: tuple[type[Exception], ...]) -> int:
    """Run `main` until it returns (0), or fails with an error it `expected` or an OSError: one
    line on stderr, 1."""
    from firewall.state.failures import describe_os_error

    try:
        asyncio.run(main)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr, flush=True)
        return 1
    return 0
