"""One `firewall run`: the proxy, the agent's token and environment, the command, the clean-up.

`RunSession.run` picks the shared proxy or starts one of the run's own (while the policy in
force is read: a proxy takes most of a second to start), mints the agent's token (dead with
this process, its lease, even if it is killed before it can revoke it), builds the agent's
environment and files, runs the command (in the sandbox unless told not to) and waits for it,
then revokes the token, removes the run's files and stops its own proxy, whatever happened.

On `firewall run`'s start-up path: no Typer, rich, pydantic, lark or mitmproxy
(tests/cli/test_lean_imports.py). A failure is a `RunError`: one line with the fix, and the
exit code; warnings go to the `warn` the caller gives.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firewall.policy.compiled_json import CredentialUse, secret_names
from firewall.run import client_files, environment, isolation
from firewall.run import proxy_process as process
from firewall.run.waiting_hint import WaitingHint
from firewall.state import agents
from firewall.state.db import open_plain
from firewall.state.failures import describe_database_error, describe_os_error
from firewall.state.home import Home, write_private_file
from firewall.state.pids import own_lease

if TYPE_CHECKING:
    from firewall.oauth.codex_home import CodexHome
    from firewall.policy import CompiledPolicy
    from firewall.state.policy_store import PolicyVersion

# What shells exit with for a command they cannot find, and for one they cannot execute.
NOT_FOUND, NOT_EXECUTABLE = 127, 126


class RunError(Exception):
    """Why the run cannot go on, as one line with the fix; `code` is the exit code to give."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def preflight(command: list[str], agent: str) -> None:
    """What refuses a run before anything is started or stored for it.

    The passphrase leaves this process's environment here (by starting it again without it):
    the agent could read /proc/PID/environ."""
    if os.environ.get(isolation.MARKER):
        raise RunError(
            "`firewall run` cannot start inside a `firewall run`: the sandbox holds no firewall state "
            "to run with; start the other agent from outside, next to this one"
        )
    from firewall.vault import VaultError, handoff

    try:
        handoff.reexec_without_passphrase_env()
    except VaultError as exc:
        raise RunError(str(exc)) from None
    try:
        agents.check_agent_name(agent)
    except agents.AgentError as exc:
        raise RunError(str(exc)) from None
    check_command(command)


def check_command(command: list[str]) -> None:
    """Refuse a command that cannot start before a proxy is started for it, with a shell's exit code."""
    if not command:
        raise RunError("no command given; put it after --, e.g. firewall run -- curl https://api.openai.com/v1/models")
    name = command[0]
    if "/" not in name:
        if shutil.which(name) is None:
            raise RunError(f"command not found: {name} (not in PATH)", NOT_FOUND)
        return
    path = Path(name)
    if not path.exists():
        raise RunError(f"command not found: {name}", NOT_FOUND)
    if path.is_dir() or not os.access(path, os.X_OK):
        raise RunError(f"command not executable: {name}; make it executable with `chmod +x {name}`", NOT_EXECUTABLE)


def _ignore(message: str) -> None:
    pass


@dataclass(frozen=True)
class RunPolicy:
    """What a run needs of its policy: the credentials it injects, and the whole compiled policy
    only for an OAuth login (built then from the stored version: most runs never build it)."""

    credentials: tuple[CredentialUse, ...]
    pinned: CompiledPolicy | None = None
    stored: PolicyVersion | None = None

    def whole(self) -> CompiledPolicy:
        if self.pinned is not None:
            return self.pinned
        from firewall.state import policy_store

        assert self.stored is not None
        try:
            return self.stored.load()
        except policy_store.PolicyStoreError as exc:
            raise RunError(str(exc)) from None


@dataclass
class RunSession:
    """`command` run as `agent` through the firewall of `home`."""

    home: Home
    agent: str
    command: list[str]
    isolate: bool = True
    upstream_ca: Path | None = None  # a proxy of the run's own trusts it for upstreams
    warn: Callable[[str], None] = _ignore

    def run(self, pinned: CompiledPolicy | None = None) -> int:
        """The command's exit code. `pinned`: a policy for this run alone, on a proxy of its own;
        without it, the policy in force, on the shared proxy if one runs."""
        policy_file = self.home.run_dir / f"policy-{os.getpid()}.json" if pinned is not None else None
        starting: process.Starting | None = None  # the run's own proxy, until it is stopped
        own: process.ProxyInfo | None = None  # ... once it listens
        try:
            if policy_file is not None and pinned is not None:
                write_private_file(policy_file, pinned.to_json().encode())
            proxy = None if pinned is not None else process.running_proxy(self.home)
            if proxy is not None and self.upstream_ca is not None:
                self._check_shared_upstream_ca(proxy)
            given_ca = None  # the CA agents were given before this run's proxy starts
            if proxy is None:
                given_ca = _given_ca(self.home)
                starting = self._start_own_proxy(policy_file)
            policy = (
                RunPolicy(pinned.credential_uses(), pinned=pinned) if pinned is not None else self._policy_in_force()
            )
            if starting is not None:
                proxy = own = self._own_proxy(starting, given_ca)
            assert proxy is not None
            code = self._run_agent(proxy, policy)
            if starting is not None and own is not None:
                stopping, starting = starting, None
                self._stop_own_proxy(own, stopping)
        finally:
            if starting is not None:
                if own is not None:
                    process.stop(own)
                    starting.process.wait(timeout=process.STOP_TIMEOUT)
                else:  # the run ended before its proxy was listening
                    process.abandon(starting)
            if policy_file is not None:
                policy_file.unlink(missing_ok=True)
        return code

    # ---- the proxy ----

    def _check_shared_upstream_ca(self, proxy: process.ProxyInfo) -> None:
        """--upstream-ca is a proxy's setting: refuse a run that would use a shared proxy without it."""
        assert self.upstream_ca is not None
        if proxy.upstream_ca == str(self.upstream_ca.resolve()):
            return
        trusted = f"with --upstream-ca {proxy.upstream_ca}" if proxy.upstream_ca else "without --upstream-ca"
        raise RunError(
            f"--upstream-ca {self.upstream_ca}: the shared proxy (pid {proxy.pid}) already runs {trusted}, so the "
            f"agent's upstreams would not be checked against it; restart it with `firewall proxy stop && firewall "
            f"proxy start --upstream-ca {self.upstream_ca}`, or run with --policy PATH to get a proxy of this "
            "run's own",
            2,
        )

    def _start_own_proxy(self, policy_file: Path | None) -> process.Starting:
        """Start this run's proxy on a socket bound here, so the command can start before the proxy is up:
        its connections wait in the socket's queue until the proxy accepts them."""
        from firewall.proxy.ca import read_upstream_ca
        from firewall.proxy.settings import ProxySettings
        from firewall.state.home import StateError

        state_file = self.home.run_dir / f"proxy-run-{os.getpid()}.json"
        try:
            if self.upstream_ca is not None:
                read_upstream_ca(self.upstream_ca)  # what the proxy would refuse, refused before the command starts
            listener = process.bind_listener()
        except (StateError, process.ProxyProcessError) as exc:
            raise RunError(str(exc)) from None
        settings = ProxySettings(
            self.home, port=0, state_file=state_file, pinned_policy=policy_file, upstream_ca=self.upstream_ca
        )
        return process.spawn_background(settings, listener=listener)

    def _own_proxy(self, starting: process.Starting, given_ca: bytes | None) -> process.ProxyInfo:
        """The proxy to give the command. A start that creates the CA the command must trust (the
        first in this state folder, or one after `ca/` was deleted or damaged) is waited for, and a
        CA that replaced one agents trusted is said, as `proxy start` says it; later starts are not
        waited for (see _start_own_proxy)."""
        from firewall.proxy.ca import agent_bundle_path, kept_by_next_start, read_given_ca, replaced_ca_warning

        try:
            if agent_bundle_path(self.home).exists() and kept_by_next_start(self.home, given_ca):
                if (why := process.failure(starting)) is not None:
                    raise process.ProxyProcessError(why)
                return process.accepting(starting)
            info = process.wait_listening(starting)[0]
        except process.ProxyProcessError as exc:
            raise RunError(str(exc)) from None
        if replaced := replaced_ca_warning(self.home, given_ca, read_given_ca(self.home)):
            self.warn(replaced)
        return info

    def _stop_own_proxy(self, proxy: process.ProxyInfo, starting: process.Starting) -> None:
        """Stop this run's proxy; say so if it had failed on its own (the command may not have noticed)."""
        process.stop(proxy)
        starting.process.wait(timeout=process.STOP_TIMEOUT)
        if (why := process.failure(starting)) is not None:
            raise RunError(f"{why}; the command's requests could not go out")

    # ---- the database ----

    def _database(self) -> sqlite3.Connection:
        """A plain connection: sqlite_utils is loaded only when a migration is due (state/db.py)."""
        try:
            return open_plain(self.home.database)
        except sqlite3.Error as exc:  # a damaged, locked or unwritable file: say which, and the fix
            raise RunError(describe_database_error(exc, self.home.database)) from None
        except OSError as exc:
            raise RunError(describe_os_error(exc)) from None

    def _policy_in_force(self) -> RunPolicy:
        from firewall.state import policy_store

        db = self._database()
        try:
            version = policy_store.version_in_force(db)
            return RunPolicy(version.credentials(), stored=version)
        except policy_store.PolicyStoreError as exc:
            raise RunError(str(exc)) from None
        finally:
            db.close()

    # ---- the agent ----

    def _run_agent(self, proxy: process.ProxyInfo, policy: RunPolicy) -> int:
        from firewall.proxy.ca import agent_bundle_path, agent_ca_path

        home = self.home
        bundle, ca_cert = agent_bundle_path(home), agent_ca_path(home)
        if not bundle.exists() or not ca_cert.exists():
            raise RunError(f"{bundle} is missing; restart the proxy (`firewall proxy stop; firewall proxy start`)")
        placeholders, secret_values = _placeholders_and_secrets(home, secret_names(policy.credentials))
        if self.isolate:
            try:
                isolation.find_bwrap()  # before anything is stored
            except isolation.SandboxError as exc:
                raise RunError(str(exc)) from None
        db = self._database()
        # The token dies with this process (its lease), even if it is killed before it can revoke it.
        token = agents.mint_token(db, self.agent, lease=own_lease(), isolated=self.isolate)
        codex_home = None
        wgetrc = home.run_dir / f"wgetrc-{os.getpid()}"
        try:
            codex_home = self._codex_home(policy)
            proxy_address = environment.proxy_url(proxy.port, self.agent, token)
            try:
                client_files.write_wgetrc(wgetrc, os.environ, bundle, proxy_address)
            except OSError as exc:
                raise RunError(
                    f"cannot write the run's wgetrc {wgetrc}: {exc.strerror}; check the state folder's run/ permissions"
                ) from None
            env = environment.child_environment(
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
            with WaitingHint(home.database, self.agent, time.time()):
                if not self.isolate:
                    self.warn(
                        "running the command without isolation (--no-isolate): it can reach the network "
                        "without the proxy; its audit rows say so"
                    )
                    return _spawn(self.command, env)
                writable = (codex_home.path,) if codex_home is not None else ()
                try:
                    return isolation.run_isolated(
                        home, proxy.port, self.command, env, (bundle, ca_cert, wgetrc), writable
                    )
                except isolation.SandboxError as exc:
                    raise RunError(str(exc)) from None
        finally:
            try:
                agents.revoke_token(db, token)
            except (sqlite3.Error, OSError) as exc:  # a full disk: the agent's exit code still wins
                self.warn(
                    f"could not revoke this run's proxy token in {home.database} ({exc}); it stops working "
                    "anyway once this run has ended (the token is tied to this run's process)"
                )
            db.close()
            wgetrc.unlink(missing_ok=True)
            if codex_home is not None:
                codex_home.remove()

    def _codex_home(self, policy: RunPolicy) -> CodexHome | None:
        """A CODEX_HOME holding a placeholder login, when the policy injects an OAuth (Codex) login."""
        home = self.home
        if not home.vault.exists() or not any(c.kind == "oauth" for c in policy.credentials):
            return None  # before the imports and the whole policy: most runs inject no login
        compiled = policy.whole()
        from firewall.oauth.codex_home import (
            REFRESH_OVERRIDE_URL,
            create_codex_home,
            oauth_login,
            refresh_override_refused,
            user_codex_home,
        )
        from firewall.vault import Vault, VaultError

        try:
            found = oauth_login(compiled, Vault.open(home).values())
        except VaultError as exc:
            raise RunError(str(exc)) from None
        if found is None:
            return None
        if not refresh_override_refused(compiled, self.agent):
            self.warn(
                f"the policy does not refuse {REFRESH_OVERRIDE_URL}, where Codex is told to refresh its "
                "placeholder login; add `default block` so its own refresh attempts are refused"
            )
        try:
            return create_codex_home(found[1], user_codex_home(os.environ), home.run_dir)
        except OSError as exc:
            raise RunError(f"cannot create a CODEX_HOME for the agent: {exc}") from None


def _given_ca(home: Home) -> bytes | None:
    from firewall.proxy.ca import read_given_ca

    return read_given_ca(home)


def _placeholders_and_secrets(home: Home, secrets: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
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
            raise RunError(str(exc)) from None
    for secret in secrets:
        provider = PROVIDERS.get(providers.get(secret, secret))
        if provider is not None and provider.env_var:
            placeholders[provider.env_var] = provider.placeholder
    return placeholders, values


def _spawn(command: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(command, env=env, preexec_fn=isolation.die_with_parent)
    except FileNotFoundError:
        raise RunError(f"command not found: {command[0]}", NOT_FOUND) from None
    except PermissionError:
        raise RunError(f"command not executable: {command[0]}", NOT_EXECUTABLE) from None
    return isolation.wait_forwarding(child, child.pid)
