"""`firewall secrets`: add, list, rotate and remove the credentials the proxy injects.

A value never comes from the command line (other users can read argv with
`ps`): it comes from standard input, an environment variable, a file, or a
prompt that does not echo.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from firewall.cli.errors import fail, warn
from firewall.oauth.login import parse_login
from firewall.oauth.report import LoginReport, describe, report
from firewall.oauth.status import read_statuses, status_path
from firewall.state.home import Home, StateError, open_home
from firewall.vault import PROVIDERS, EntryInfo, Kind, Vault, VaultError, check_name, get_provider, validate_value
from firewall.vault.format import format_time

app = typer.Typer(
    help="Add, list, rotate and remove the credentials the proxy injects.",
    no_args_is_help=True,
)


@contextmanager
def vault_errors() -> Iterator[None]:
    """Turn the vault's, the state folder's and file-system errors into `error: …` and exit 1."""
    try:
        yield
    except (VaultError, StateError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'state folder'}: {exc.strerror or exc}")


def _strip_one_newline(raw: str) -> str:
    """Drop the line ending `echo` or a file adds; anything else is part of the value."""
    for ending in ("\r\n", "\n"):
        if raw.endswith(ending):
            return raw[: -len(ending)]
    return raw


def _prompt(name: str) -> str:
    if not sys.stdin.isatty():
        fail("no value given: pass --stdin, --from-env VAR or --file PATH, or run in a terminal to be prompted")
    try:
        # A pasted key often brings a space or tab along, unseen at a hidden prompt: trim it, as other tools do.
        return getpass.getpass(f'Value for "{name}" (input hidden): ').strip()
    except (EOFError, KeyboardInterrupt):
        fail("no value entered")


def _read_value(name: str, stdin: bool, from_env: str | None, file: Path | None) -> str:
    chosen = [
        option
        for option, given in (("--stdin", stdin), ("--from-env", from_env is not None), ("--file", file is not None))
        if given
    ]
    if len(chosen) > 1:
        fail(f"give the value one way only, not {' and '.join(chosen)}")
    if stdin:
        try:
            return _strip_one_newline(sys.stdin.buffer.read().decode("utf-8"))
        except UnicodeDecodeError:
            fail("standard input is not UTF-8 text")
    if from_env is not None:
        raw = os.environ.get(from_env)
        if raw is None:
            fail(f"environment variable {from_env} is not set")
        return _strip_one_newline(raw)
    if file is not None:
        try:
            return _strip_one_newline(file.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"{file}: cannot read: {exc.strerror}")
        except UnicodeDecodeError:
            fail(f"{file}: not UTF-8 text")
    return _prompt(name)


def _provider_for(name: str, provider: str | None) -> str:
    if provider is not None:
        return get_provider(provider).name
    if name in PROVIDERS:
        return name
    fail(f'"{name}" is not a provider name, so pass --provider (one of: {", ".join(PROVIDERS)})')


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Entry name; policies refer to the secret by it.")],
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            "-p",
            help=f"One of: {', '.join(PROVIDERS)}. Defaults to NAME when NAME is one of them.",
        ),
    ] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the value from standard input.")] = False,
    from_env: Annotated[
        str | None, typer.Option("--from-env", metavar="VAR", help="Read the value from environment variable VAR.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", metavar="PATH", help="Read the value from the file PATH.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing entry (rotate it).")] = False,
) -> None:
    """Store a secret in the vault, encrypted. Without --stdin, --from-env or --file, prompts without echo.

    Example: printenv OPENAI_API_KEY | firewall secrets add openai --stdin

    Example: firewall secrets add codex --provider codex --file ~/.codex/auth.json
    """
    with vault_errors():
        check_name(name)
        provider_name = _provider_for(name, provider)
        value = _read_value(name, stdin, from_env, file)
        validate_value(provider_name, value)
        vault = Vault.open(open_home())
        rotating = name in vault.names()
        info = vault.add(name, value, provider_name, force=force)
    verb = "rotated" if rotating else "stored"
    typer.echo(f'{verb} "{info.name}" ({info.provider}, fingerprint {info.fingerprint}) in {vault.path}')
    if get_provider(provider_name).kind is Kind.OAUTH:
        typer.echo(f"imported the ChatGPT login of {describe(parse_login(value))}")


def _time_or(when, missing: str) -> str:
    return format_time(when.replace(microsecond=0)) if when else missing


def _as_json(info: EntryInfo, login: LoginReport | None) -> dict:
    entry: dict = {
        "name": info.name,
        "provider": info.provider,
        "created": format_time(info.created),
        "updated": format_time(info.updated),
        "last_used": format_time(info.last_used) if info.last_used else None,
        "fingerprint": info.fingerprint,
    }
    if login is not None:
        entry["oauth"] = {
            "account": login.account,
            "email": login.email,
            "plan": login.plan,
            "expires": _time_or(login.expires, None),
            "last_refresh": _time_or(login.last_refresh, None),
            "state": login.state,
            "detail": login.detail,
        }
    return entry


def _login_reports(home: Home, vault: Vault, entries: list[EntryInfo]) -> dict[str, LoginReport]:
    """Account, expiry and state of each OAuth entry (read from the login; no token leaves here)."""
    statuses = read_statuses(status_path(home))
    return {
        e.name: report(vault.get(e.name), e.fingerprint, statuses.get(e.name), time.time())
        for e in entries
        if e.provider in PROVIDERS and PROVIDERS[e.provider].kind is Kind.OAUTH
    }


def _print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_logins(logins: dict[str, LoginReport]) -> None:
    typer.echo("\nOAuth logins (the proxy refreshes them):")
    _print_rows(
        ("NAME", "ACCOUNT", "PLAN", "EXPIRES", "LAST REFRESH", "STATE"),
        [
            (
                name,
                r.account or "?",
                r.plan or "?",
                _time_or(r.expires, "unknown"),
                _time_or(r.last_refresh, "never"),
                r.state,
            )
            for name, r in logins.items()
        ],
    )
    for name, r in logins.items():
        if r.state == "needs login":
            typer.echo(
                f"{name}: {r.detail}; log in again (`codex login`), then: "
                f"firewall secrets add {name} --provider codex --file ~/.codex/auth.json --force"
            )
        elif r.detail and r.state != "expired":
            typer.echo(f"{name}: {r.detail}")


def _print_table(entries: list[EntryInfo]) -> None:
    _print_rows(
        ("NAME", "PROVIDER", "CREATED", "UPDATED", "LAST USED", "FINGERPRINT"),
        [
            (
                e.name,
                e.provider,
                format_time(e.created),
                format_time(e.updated),
                format_time(e.last_used) if e.last_used else "never",
                e.fingerprint,
            )
            for e in entries
        ],
    )


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array instead of a table.")] = False,
) -> None:
    """List the vault's entries: name, provider, times and fingerprint. Never the values.

    For OAuth logins also the account, plan, access token expiry, last refresh and
    state (ok, expired, refreshing, retrying, needs login).

    Example: firewall secrets list --json
    """
    with vault_errors():
        home = open_home()
        vault = Vault.open(home)
        entries = vault.entries()
        logins = _login_reports(home, vault, entries)
    if as_json:
        typer.echo(json.dumps([_as_json(e, logins.get(e.name)) for e in entries], indent=2))
    elif not entries:
        typer.echo("no secrets yet; add one with: firewall secrets add NAME --stdin")
    else:
        _print_table(entries)
        if logins:
            _print_logins(logins)


@app.command("rm")
def rm(name: Annotated[str, typer.Argument(help="Entry to delete.")]) -> None:
    """Delete a secret from the vault.

    Example: firewall secrets rm openai
    """
    with vault_errors():
        home = open_home()
        vault = Vault.open(home)
        vault.remove(name)
    typer.echo(f'removed "{name}" from {vault.path}')
    if name in _injected_by_policy_in_force(home):
        warn(
            f'the policy in force injects "{name}": its requests now fail (503) until you add it again '
            f"(`firewall secrets add {name}`) or apply a policy that does not inject it"
        )


def _injected_by_policy_in_force(home) -> tuple[str, ...]:
    """The secrets the applied policy injects; () when none is applied or it cannot be read."""
    if not home.database.exists():
        return ()
    try:
        from firewall.state import policy_store
        from firewall.state.db import open_database

        db = open_database(home.database)
        try:
            version = policy_store.active_version(db)
            return tuple(version.load().secrets()) if version is not None else ()
        finally:
            db.close()
    except Exception:  # a warning only: the removal itself succeeded
        return ()


@app.command("restore-backup")
def restore_backup_command() -> None:
    """Put back the last good copy of the vault (vault.json.bak), when the vault file is damaged.

    Every change to the vault writes the backup first. The damaged file is kept as
    vault.json.damaged; a vault that reads fine is left alone. A running proxy picks the
    restored vault up within a second.

    Example: firewall secrets restore-backup
    """
    from firewall.vault.store import restore_backup

    with vault_errors():
        home = open_home()
        count = restore_backup(home)
    typer.echo(
        f"restored {home.vault} from its backup: {count} secret(s); the damaged file is {home.vault.name}.damaged"
    )
