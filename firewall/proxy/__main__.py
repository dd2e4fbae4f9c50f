"""`python -m firewall.proxy [OPTIONS]`: `firewall proxy start --foreground [OPTIONS]`,
without loading the rest of the command line (the policy, audit, approvals, ... commands).

`firewall run` and `firewall proxy start` start proxy processes this way: a proxy's
start-up is on the critical path of every `firewall run` that has no proxy to use.
"""

from __future__ import annotations

import sys


def main() -> None:
    # Should the passphrase have to leave the environment, the process re-executes itself as
    # `python -m firewall` with sys.argv[1:]: make that the full command.
    sys.argv[1:] = ["proxy", "start", "--foreground", *sys.argv[1:]]
    from firewall.vault import VaultError, handoff

    try:
        handoff.adopt()  # a passphrase handed over by pipe, never by environment
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

    import typer

    from firewall.cli import proxy_cmd

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(proxy_cmd.start)
    try:
        app(args=sys.argv[3:], prog_name="firewall proxy start")
    except Exception as exc:  # one line on stderr (the proxy log), the traceback in the CLI log
        from firewall.cli.boundary import report

        sys.exit(report(exc))


if __name__ == "__main__":
    main()
