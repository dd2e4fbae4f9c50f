"""`firewall run`: run an agent with all its HTTP(S) going through the firewall.

No Typer here: its options are declared in firewall/cli/run_app.py, and the usual command
line is read without Typer at all (firewall/cli/run_plain.py).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from firewall import run_env
from firewall.approvals.hint import WaitingHint
from firewall.cli.errors import fail, warn
from firewall.cli.state import database_or_exit, home_or_exit
from firewall.proxy import process
from firewall.run import client_files, isolation
from firewall.state import agents
from firewall.state.home import Home, write_private_file
from firewall.state.pids import own_lease


def run_command(
    command: list[str], agent: str, policy: list[Path] | None, upstream_ca: Path | None, no_isolate: bool
) -> int:
    """`firewall run`'s work, without Typer (firewall/cli/run_plain.py calls it directly): the exit code."""
    if os.environ.get(isolation.MARKER):
        fail(
            "`firewall run` cannot start inside a `firewall run`: the sandbox holds no firewall state "
            "to run with; start the other agent from outside, next to this one"
        )
    _keep_passphrase_out_of_environ()
    try:
        agents.check_agent_name(agent)
    except agents.AgentError as exc:
        fail(str(exc))
    _check_command(command)
    home = home_or_exit()
    private_proxy = None
    starting = None
    policy_file = None
    compiled = None
    try:
        if policy:
            compiled, policy_file = _pinned_policy(home, policy)
        proxy = None if policy else process.running_proxy(home)
        if proxy is not None and upstream_ca is not None:
            _check_shared_upstream_ca(proxy, upstream_ca)
        if proxy is None:
            # The proxy takes most of a second to start: it starts while this process reads the policy.
            starting = _spawn_private_proxy(home, policy_file, upstream_ca)
        if compiled is None:
            compiled = _applied_policy(home)
        if starting is not None:
            private_proxy = _wait_private_proxy(home, starting)
            proxy = private_proxy[0]
        code = _run_agent(home, proxy, agent, command, compiled, isolate=not no_isolate)
        if private_proxy is not None:
            (stopped, started), private_proxy, starting = (private_proxy, starting), None, None
            _stop_private_proxy(stopped, started)
    finally:
        if private_proxy is not None:
            process.stop(private_proxy[0])
            private_proxy[1].wait(timeout=process.STOP_TIMEOUT)
        elif starting is not None:  # the run ended before its proxy was listening
            process.abandon(starting)
        if policy_file is not None:
            policy_file.unlink(missing_ok=True)
    return code


# What shells exit with for a command they cannot find, and for one they cannot execute.
NOT_FOUND, NOT_EXECUTABLE = 127, 126


def _check_command(command: list[str]) -> None:
    """Refuse a command that cannot start before a proxy is started for it, with a shell's exit code."""
    if not command:
        fail("no command given; put it after --, e.g. firewall run -- curl https://api.openai.com/v1/models")
    name = command[0]
    if "/" not in name:
        if shutil.which(name) is None:
            fail(f"command not found: {name} (not in PATH)", code=NOT_FOUND)
        return
    path = Path(name)
    if not path.exists():
        fail(f"command not found: {name}", code=NOT_FOUND)
    if path.is_dir() or not os.access(path, os.X_OK):
        fail(f"command not executable: {name}; make it executable with `chmod +x {name}`", code=NOT_EXECUTABLE)


def _check_shared_upstream_ca(proxy: process.ProxyInfo, upstream_ca: Path) -> None:
    """--upstream-ca is a proxy's setting: refuse a run that would use a shared proxy without it."""
    if proxy.upstream_ca == str(upstream_ca.resolve()):
        return
    trusted = f"with --upstream-ca {proxy.upstream_ca}" if proxy.upstream_ca else "without --upstream-ca"
    fail(
        f"--upstream-ca {upstream_ca}: the shared proxy (pid {proxy.pid}) already runs {trusted}, so the agent's "
        f"upstreams would not be checked against it; restart it with `firewall proxy stop && firewall proxy "
        f"start --upstream-ca {upstream_ca}`, or run with --policy PATH to get a proxy of this run's own",
        code=2,
    )


def _keep_passphrase_out_of_environ() -> None:
    """The agent could read this process's /proc/PID/environ: start again without the passphrase in it."""
    from firewall.vault import VaultError, handoff

    try:
        handoff.reexec_without_passphrase_env()
    except VaultError as exc:
        fail(str(exc))


def _pinned_policy(home: Home, paths: list[Path]):
    from firewall.cli.policy_cmd import compile_or_exit
    from firewall.cli.policy_versions_cmd import _missing_secrets

    compiled = compile_or_exit(paths).policy
    missing = _missing_secrets(home, compiled.secrets())
    if missing:
        fail(
            "the policy injects credentials whose vault entries do not exist: "
            + ", ".join(missing)
            + "; add them with `firewall secrets add NAME` first"
        )
    path = home.run_dir / f"policy-{os.getpid()}.json"
    write_private_file(path, compiled.to_json().encode())
    return compiled, path


def _applied_policy(home: Home):
    from firewall.cli.state import applied_policy_or_exit

    return applied_policy_or_exit()


def _spawn_private_proxy(home: Home, policy_file: Path | None, upstream_ca: Path | None) -> process.Starting:
    """Start this run's proxy on a socket bound here, so the command can start before the proxy is up:
    its connections wait in the socket's queue until the proxy accepts them."""
    from firewall.proxy.ca import read_upstream_ca
    from firewall.state.home import StateError

    state_file = home.run_dir / f"proxy-run-{os.getpid()}.json"
    try:
        if upstream_ca is not None:
            read_upstream_ca(upstream_ca)  # what the proxy would refuse, refused before the command starts
        listener = process.bind_listener()
    except (StateError, process.ProxyProcessError) as exc:
        fail(str(exc))
    return process.spawn_background(
        home, state_file=state_file, pinned_policy=policy_file, upstream_ca=upstream_ca, listener=listener
    )


def _stop_private_proxy(proxy, starting: process.Starting) -> None:
    """Stop this run's proxy; say so if it had failed on its own (the command may not have noticed)."""
    process.stop(proxy[0])
    proxy[1].wait(timeout=process.STOP_TIMEOUT)
    if (why := process.failure(starting)) is not None:
        fail(f"{why}; the command's requests could not go out")


def _wait_private_proxy(home: Home, starting: process.Starting):
    """The proxy to give the command. Its first start in this state folder creates the CA the
    command must trust: that one is waited for; later ones are not (see _spawn_private_proxy)."""
    from firewall.proxy.ca import agent_bundle_path, agent_ca_path

    try:
        if agent_bundle_path(home).exists() and agent_ca_path(home).exists():
            if (why := process.failure(starting)) is not None:
                raise process.ProxyProcessError(why)
            return process.accepting(starting), starting.process
        return process.wait_listening(starting)
    except process.ProxyProcessError as exc:
        fail(str(exc))


def _run_agent(home: Home, proxy: process.ProxyInfo, agent: str, command: list[str], compiled, isolate: bool) -> int:
    from firewall.proxy.ca import agent_bundle_path, agent_ca_path

    if not command:
        fail("no command given; put it after --, e.g. firewall run -- curl https://api.openai.com/v1/models")
    bundle, ca_cert = agent_bundle_path(home), agent_ca_path(home)
    if not bundle.exists() or not ca_cert.exists():
        fail(f"{bundle} is missing; restart the proxy (`firewall proxy stop; firewall proxy start`)")
    placeholders, secret_values = _placeholders_and_secrets(home, compiled)
    if isolate:
        try:
            isolation.find_bwrap()  # before anything is stored
        except isolation.SandboxError as exc:
            fail(str(exc))
    db = database_or_exit(home)
    # The token dies with this process (its lease), even if it is killed before it can revoke it.
    token = agents.mint_token(db, agent, lease=own_lease(), isolated=isolate)
    codex_home = None
    wgetrc = home.run_dir / f"wgetrc-{os.getpid()}"
    try:
        codex_home = _codex_home(home, compiled, agent)
        proxy_address = run_env.proxy_url(proxy.port, agent, token)
        try:
            client_files.write_wgetrc(wgetrc, os.environ, bundle, proxy_address)
        except OSError as exc:
            fail(f"cannot write the run's wgetrc {wgetrc}: {exc.strerror}; check the state folder's run/ permissions")
        env = run_env.child_environment(
            os.environ,
            proxy=proxy_address,
            bundle=bundle,
            ca_cert=ca_cert,
            placeholders=placeholders,
            secret_values=secret_values,
            wgetrc=wgetrc,
            node_preload=client_files.NODE_PRELOAD,
        )
        if codex_home is not None:
            env.update(codex_home.env)
        with WaitingHint(home.database, agent, time.time()):
            if not isolate:
                warn(
                    "running the command without isolation (--no-isolate): it can reach the network "
                    "without the proxy; its audit rows say so"
                )
                return _spawn(command, env)
            writable = (codex_home.path,) if codex_home is not None else ()
            try:
                return isolation.run_isolated(home, proxy.port, command, env, (bundle, ca_cert, wgetrc), writable)
            except isolation.SandboxError as exc:
                fail(str(exc))
    finally:
        try:
            agents.revoke_token(db, token)
        except (sqlite3.Error, OSError) as exc:  # a full disk: the agent's exit code still wins
            warn(
                f"could not revoke this run's proxy token in {home.database} ({exc}); it stops working "
                "anyway once this run has ended (the token is tied to this run's process)"
            )
        db.close()
        wgetrc.unlink(missing_ok=True)
        if codex_home is not None:
            codex_home.remove()


def _placeholders_and_secrets(home: Home, compiled) -> tuple[dict[str, str], list[str]]:
    """Placeholder keys for the SDKs of the policy's credentials, and the vault's values
    (to keep them out of the child's environment)."""
    from firewall.oauth import login_secrets
    from firewall.vault import PROVIDERS, Vault, VaultError

    placeholders: dict[str, str] = {}
    providers: dict[str, str] = {}
    values: list[str] = []
    if home.vault.exists():
        try:
            vault = Vault.open(home)
            providers = {entry.name: entry.provider for entry in vault.entries()}
            # An OAuth login's tokens one by one too: an agent must not see any of them.
            values = [part for value in vault.values().values() for part in (value, *login_secrets(value))]
        except VaultError as exc:
            fail(str(exc))
    for secret in compiled.secrets() if compiled else ():
        provider = PROVIDERS.get(providers.get(secret, secret))
        if provider is not None and provider.env_var:
            placeholders[provider.env_var] = provider.placeholder
    return placeholders, values


def _codex_home(home: Home, compiled, agent: str):
    """A CODEX_HOME holding a placeholder login, when the policy injects an OAuth (Codex) login."""
    from firewall.oauth.codex_home import (
        REFRESH_OVERRIDE_URL,
        create_codex_home,
        oauth_login,
        refresh_override_refused,
        user_codex_home,
    )
    from firewall.vault import Vault, VaultError

    if compiled is None or not home.vault.exists() or not any(c.kind == "oauth" for c in compiled.credentials):
        return None
    try:
        found = oauth_login(compiled, Vault.open(home).values())
    except VaultError as exc:
        fail(str(exc))
    if found is None:
        return None
    if not refresh_override_refused(compiled, agent):
        warn(
            f"the policy does not refuse {REFRESH_OVERRIDE_URL}, where Codex is told to refresh its "
            "placeholder login; add `default block` so its own refresh attempts are refused"
        )
    try:
        return create_codex_home(found[1], user_codex_home(os.environ), home.run_dir)
    except OSError as exc:
        fail(f"cannot create a CODEX_HOME for the agent: {exc}")


def _spawn(command: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(command, env=env, preexec_fn=isolation.die_with_parent)
    except FileNotFoundError:
        fail(f"command not found: {command[0]}", code=NOT_FOUND)
    except PermissionError:
        fail(f"command not executable: {command[0]}", code=NOT_EXECUTABLE)
    return isolation.wait_forwarding(child, child.pid)
