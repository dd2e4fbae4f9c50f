"""`firewall proxy start | stop | status`: the shared proxy every `firewall run` uses."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from firewall.cli.errors import fail
from firewall.cli.state import home_or_exit
from firewall.run import proxy_process as process

app = typer.Typer(help="Start, stop and inspect the proxy.", no_args_is_help=True)
DEFAULT_PORT = 8877


@app.command()
def start(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = DEFAULT_PORT,
    upstream_ca: Annotated[
        Path | None, typer.Option(help="Extra CA (PEM) to trust for upstream servers, e.g. a corporate CA.")
    ] = None,
    limits_storage: Annotated[
        str, typer.Option(help="Where limits are counted: memory:// or redis://HOST:PORT (shared by proxies).")
    ] = "memory://",
    limits_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a redis:// limits store has to answer; past it a limited request is "
            "refused at once with 503 limits_unavailable."
        ),
    ] = 0.25,
    audit_full_action: Annotated[
        str,
        typer.Option(
            help="When audit rows cannot be written (a full disk, a locked database) and the backlog "
            "passes its bound (10,000 rows or 5 s): `refuse` new requests with 503 audit_unavailable, "
            "or `allow` them and lose the rows past the bound (counted in `proxy status`)."
        ),
    ] = "refuse",
    workers: Annotated[
        int | None,
        typer.Option(
            help="Proxy processes sharing the port, counting limits and budgets together "
            "(default: $FIREWALL_PROXY_WORKERS, else one per core; 1: a single process)."
        ),
    ] = None,
    foreground: Annotated[bool, typer.Option(help="Run in this terminal instead of in the background.")] = False,
    audit: Annotated[
        str,
        typer.Option(
            hidden=True,
            help="Benchmarks only: `off` counts audit records but "
            "writes none (bench/audit_log.py). Never off by default.",
        ),
    ] = "on",
) -> None:
    """Start the proxy on 127.0.0.1, in the background unless --foreground.

    Example: firewall proxy start --port 8877 --limits-storage redis://127.0.0.1:6379
    """
    from firewall.proxy.settings import MAX_WORKERS, ProxySettings, SettingsError, default_workers

    try:
        workers = default_workers() if workers is None else workers
    except SettingsError as exc:
        fail(str(exc), code=2)
    if not 1 <= workers <= MAX_WORKERS:
        fail(f"--workers must be 1 to {MAX_WORKERS}, not {workers}", code=2)
    home = home_or_exit()
    running = process.running_proxy(home)
    if running is not None:
        fail(
            f"a proxy is already running on 127.0.0.1:{running.port} (pid {running.pid}); "
            "stop it with `firewall proxy stop`"
        )
    if audit not in ("on", "off"):
        fail(f"--audit is `on` or `off`, not {audit!r}")
    try:
        settings = ProxySettings(
            home=home,
            port=port,
            state_file=process.shared_state_file(home),
            upstream_ca=upstream_ca,
            limits_storage=limits_storage,
            limits_timeout=limits_timeout,
            audit=audit == "on",
            audit_full_action=audit_full_action,
            workers=workers,
        )
    except SettingsError as exc:
        fail(str(exc), code=2 if foreground else 1)  # each mode exits as it always has (2 would fit both)
    if foreground:  # the shared proxy in this terminal, its log on stderr
        from firewall.vault import VaultError, handoff

        try:
            handoff.reexec_without_passphrase_env()  # agents could read this process's /proc/PID/environ
        except VaultError as exc:
            fail(str(exc))
        from firewall.proxy.foreground import serve_in_foreground

        if code := serve_in_foreground(settings):
            raise SystemExit(code)
        return
    from firewall.proxy import ca

    given_before = ca.read_given_ca(home)  # the CA agents trusted, to say so if the start replaces it
    try:
        info, _ = process.start_background(settings)
    except process.ProxyProcessError as exc:
        fail(str(exc))
    typer.echo(f"proxy listening on 127.0.0.1:{info.port} (pid {info.pid})")
    if info.workers:
        typer.echo(f"{len(info.workers)} workers (pids {', '.join(map(str, info.workers))}) share its port and counts")
    replaced = ca.replaced_ca_warning(home, given_before, ca.read_given_ca(home))
    if replaced:
        from firewall.cli.errors import warn

        warn(replaced)
    _warn_without_policy(home)


def _warn_without_policy(home) -> None:
    """Starting with no policy in force is allowed (apply one later) but blocks every request meanwhile."""
    from firewall.cli.errors import warn
    from firewall.cli.state import database_or_exit
    from firewall.state import policy_store

    db = database_or_exit(home)
    try:
        version = policy_store.active_version(db)
    finally:
        db.close()
    if version is None:
        warn("no policy is in force: the proxy blocks every request until you run `firewall policy apply PATH`")


@app.command()
def stop(
    grace: Annotated[
        float,
        typer.Option(
            help="Seconds the requests in flight have to finish; past it they are cut "
            "(their audit rows say cut_at_stop). New connections are refused at once."
        ),
    ] = process.DEFAULT_GRACE,
) -> None:
    """Stop the shared proxy: it stops accepting, lets the requests in flight finish (within
    --grace), cuts the rest, and writes its audit log last. Exits 1 if audit rows were lost.

    Example: firewall proxy stop --grace 30
    """
    if not 0 <= grace <= process.MAX_GRACE:
        fail(f"--grace is seconds from 0 to {process.MAX_GRACE:.0f}, not {grace:g}")
    home = home_or_exit()
    info = process.running_proxy(home)
    if info is None:
        fail("no proxy is running")
    report = process.stop(info, grace=grace)
    if report is None:
        fail(f"the proxy (pid {info.pid}) did not stop within {grace + process.STOP_TIMEOUT:.0f}s")
    typer.echo(f"proxy stopped (pid {info.pid})")
    if report.get("cut"):
        typer.echo(
            f"{report['cut']} request(s) still in flight after the {grace:g}s grace were cut "
            "(their audit rows say cut_at_stop)"
        )
    if report.get("lost"):
        fail(
            f"{report['lost']} audit row(s) were not written: {report.get('lost_cause') or 'cause unknown'}; "
            "free space or release the database, then check with `firewall audit verify`"
        )


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Say whether the shared proxy runs, where, since when, its workers, and what fails in it now (exit 1 if it
    does not run): a policy version it cannot load, a vault it cannot read, a limits store that
    does not answer.

    Example: firewall proxy status --json
    """
    home = home_or_exit()
    info = process.running_proxy(home)
    data = {"running": info is not None}
    if info is not None:
        data.update(
            pid=info.pid,
            port=info.port,
            started=info.started,
            limits_storage=info.limits_storage,
            uptime_s=round(time.time() - info.started, 1),
            policy=info.policy,
            pinned_policy=info.pinned_policy,
            problems=[{"what": what, "message": message} for what, message in info.problems],
            workers=list(info.workers) or [info.pid],
        )
    if as_json:
        typer.echo(json.dumps(data))
    elif info is None:
        typer.echo("no proxy is running; start one with `firewall proxy start`")
    else:
        typer.echo(
            f"running on 127.0.0.1:{info.port} (pid {info.pid}, up {data['uptime_s']}s, "
            f"limits in {info.limits_storage})"
        )
        if info.workers:
            typer.echo(f"workers: {len(info.workers)} (pids {', '.join(map(str, info.workers))})")
        typer.echo(policy_line(info))
        for what, message in info.problems:
            typer.echo(f"problem: {what} failed: {message}")
    if info is None:
        raise typer.Exit(1)


def policy_line(info: process.ProxyInfo) -> str:
    """Which policy the running proxy enforces: the version it loaded last, as `policy history` names it."""
    if info.pinned_policy:
        return "policy: the file given to `firewall run --policy` (this proxy alone; no stored version)"
    if not info.policy:
        return "policy: none in force, every request is blocked; apply one with `firewall policy apply PATH`"
    return f"policy: version {info.policy['version']} (sha256 {str(info.policy['sha256'])[:16]}) in force"
