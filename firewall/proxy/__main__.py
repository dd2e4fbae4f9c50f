"""`python -m firewall.proxy SETTINGS`: one proxy process, as `firewall run` and `firewall proxy
start` start it (settings.py spells its command line). Neither Typer nor the rest of the command
line is loaded: a proxy's start-up is on the critical path of every `firewall run` that has no
proxy to use.
"""

from __future__ import annotations

import sys


def main() -> None:
    from firewall.vault import VaultError, handoff

    try:
        handoff.adopt()  # a passphrase handed over by pipe, never by environment
        # An agent could read this process's /proc/PID/environ: start again without it there.
        handoff.reexec_without_passphrase_env(module="firewall.proxy")
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    from firewall.proxy.foreground import serve_in_foreground
    from firewall.proxy.settings import ProxySettings, SettingsError
    from firewall.state.failures import report
    from firewall.state.home import StateError, open_home

    try:
        settings = ProxySettings.from_argv(sys.argv[1:], open_home())
        code = serve_in_foreground(settings)
    except (SettingsError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2 if isinstance(exc, SettingsError) else 1
    except Exception as exc:  # one line on stderr (the proxy log), the traceback in the CLI log
        code = report(exc)
    sys.exit(code)


if __name__ == "__main__":
    main()
