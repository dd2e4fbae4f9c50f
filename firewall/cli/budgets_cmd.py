"""`firewall budgets`: each budget of the policy in force, and what each agent used of it in the
current window (docs/budgets.md).

The figures are the shared proxy's own: under `memory://` it publishes its counters every
second when they change (firewall/proxy/budget_snapshot.py); under `redis://` this reads the
counters from the store itself. With no proxy running nothing is counting: one line, exit 1.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer

from firewall.cli.errors import fail
from firewall.cli.state import home_or_exit

NO_PROXY = "no proxy is running, so no budget counts; start one with `firewall proxy start`"  # 79 columns


@dataclass(frozen=True)
class Use:
    agent: str | None  # None: the count every agent shares
    used: int  # tokens, or millionths of a dollar
    resets_at: float


def budgets(
    agent: Annotated[
        str | None, typer.Option("--agent", help="Show only this agent's use (0 when it used nothing).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each budget of the policy in force: what each agent used in the current window, of what
    limit, and when it resets. Exits 1 when no proxy is running (nothing is counting then).

    Example: firewall budgets --agent ci --json
    """
    from firewall.proxy.budget_snapshot import snapshot_path
    from firewall.run.proxy_process import running_proxy

    home = home_or_exit()
    info = running_proxy(home)
    if info is None:
        if as_json:
            typer.echo(json.dumps({"running": False, "budgets": []}))
        else:
            typer.echo(NO_PROXY)
        raise typer.Exit(1)
    snapshot = _read_snapshot(snapshot_path(info.state_file), info.pid)
    now = time.time()
    if snapshot["counters"] is None:
        counters = _shared_counters(info.limits_storage, snapshot["budgets"], now)
    else:
        counters = snapshot["counters"]
    report = _report(snapshot, counters, agent, now)
    report["proxy"] = {"pid": info.pid, "limits_storage": info.limits_storage}
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print(report)


def _read_snapshot(path, pid: int) -> dict:
    for _attempt in range(30):  # a proxy that just started writes it within a second
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            fail(f"cannot read the proxy's budget counts at {path}: {exc}; check with `firewall proxy status`")
        if data is not None and data.get("pid") == pid:
            return data
        time.sleep(0.1)
    fail(f"the proxy (pid {pid}) has not published its budget counts at {path}; restart it with a version that does")


def _shared_counters(uri: str, budgets: list[dict], now: float) -> list[dict]:
    """The counters of the current windows, read from the shared store, exactly as the proxies count."""
    from firewall.proxy.budget_store import read_shared

    try:
        return read_shared(uri, [(b["key"], b["period"]) for b in budgets], now)
    except Exception as exc:  # redis errors of every kind: one line, the store named
        fail(
            f"cannot read the budget counts from the limits store {uri} ({type(exc).__name__}: {exc}); "
            "check that it runs and answers, e.g. with `firewall proxy status`"
        )


def _report(snapshot: dict, counters: list[dict], agent: str | None, now: float) -> dict:
    from firewall.budgets.windows import window, window_id

    listed = []
    for budget in snapshot["budgets"]:
        current, end = window_id(budget["period"], now), window(budget["period"], now)[1]
        uses = [
            Use(None if c["agent"] == "*" else c["agent"], int(c["used"]), end)
            for c in counters
            if c["key"] == budget["key"] and c["window"] == current and int(c["used"]) > 0
        ]
        if agent is not None:  # its own count of a budget per agent; a shared one's count stays
            uses = [u for u in uses if u.agent == agent or u.agent is None]
            if not uses:
                uses = [Use(agent if budget["per_agent"] else None, 0, end)]
        listed.append({**_describe(budget), "use": [_use(budget, u) for u in sorted(uses, key=_by_agent)]})
    return {
        "running": True,
        "as_of": _iso(now),
        "policy_version": snapshot.get("policy_version"),
        "policy_sha256": snapshot.get("policy_sha256"),
        "budgets": listed,
    }


def _by_agent(use: Use) -> str:
    return use.agent or ""


def _describe(budget: dict) -> dict:
    return {
        "rule": budget["rule"],
        "id": budget["id"],
        "location": budget["location"],
        "host": budget["host"],
        "measure": budget["measure"],
        "period": budget["period"],
        "per_agent": budget["per_agent"],
        "limit": _amount(budget, budget["limit"]),
    }


def _use(budget: dict, use: Use) -> dict:
    return {
        "agent": use.agent,
        "used": _amount(budget, use.used),
        "limit": _amount(budget, budget["limit"]),
        "percent": round(100 * use.used / budget["limit"], 1),
        "resets_at": _iso(use.resets_at),
    }


def _amount(budget: dict, amount: int) -> int | float:
    return round(amount / 1_000_000, 6) if budget["measure"] == "usd" else amount


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _print(report: dict) -> None:
    version = report["policy_version"]
    policy = f"policy version {version}" if version is not None else "the proxy's own policy (--policy)"
    proxy = report["proxy"]
    typer.echo(
        f"budgets of {policy}, counted by the proxy (pid {proxy['pid']}, {proxy['limits_storage']}), "
        f"as of {report['as_of']}"
    )
    if not report["budgets"]:
        typer.echo("the policy in force has no budgets")
    for budget in report["budgets"]:
        scope = "per agent" if budget["per_agent"] else "shared"
        typer.echo(f"\n{budget['id']}  {budget['rule']}  ({budget['host']}; {scope})")
        if not budget["use"]:
            typer.echo(f"  nothing used this {budget['period']}")
        for use in budget["use"]:
            who = use["agent"] if use["agent"] is not None else "(all agents)"
            typer.echo(
                f"  {who:<16} {_unit(budget, use['used'])} of {_unit(budget, use['limit'])}  "
                f"{use['percent']:>5.1f}%  resets {use['resets_at']}"
            )


def _unit(budget: dict, amount: int | float) -> str:
    if budget["measure"] == "usd":
        return f"${amount:,.6f}".rstrip("0").rstrip(".")
    return f"{amount:,} {budget['measure'].replace('_', ' ')}"
