"""What a running proxy knows and keeps current: the policy, the vault's values, agents' tokens.

A watcher thread polls the state database and the vault file (every 200 ms)
and swaps in new values; the event loop only ever reads attributes, so it
never waits on the disk. A swap replaces a whole object at once: a request
keeps the policy object it was decided with.

Each of the policy, the tokens and the vault is refreshed on its own: one that
cannot be read (a policy version whose content no longer matches its sha256, a
corrupt vault) keeps its last good value and is said once (firewall/proxy/outages.py),
in the log and in the proxy's state file (`proxy status`), while the others stay
current: a revoked token is refused even while the policy cannot be replaced.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firewall.policy import CompiledPolicy
from firewall.proxy.outages import Outage
from firewall.redaction import SecretIndex
from firewall.state import agents, policy_store
from firewall.state.db import open_plain
from firewall.state.home import Home, StateError
from firewall.vault.errors import VaultError

log = logging.getLogger("firewall.proxy")
POLL_INTERVAL = 0.2
# Seconds between two writes of the vault's last-used times: each write takes the vault lock, rewrites
# vault-usage.json and fsyncs it; every poll (5 a second) under steady traffic was a steady cost.
USAGE_EVERY = 5.0
# What the watcher knows may fail and says without a traceback: a policy version that does not
# load, a vault that does not read, a state file or database the proxy cannot use.
KNOWN_FAILURES = (policy_store.PolicyStoreError, VaultError, StateError, sqlite3.Error, OSError)
NOT_ISOLATED = "run not isolated (--no-isolate)"  # leads the audit detail of such a run's rows

# With nothing applied yet, the proxy refuses everything. Compiled only when needed: the
# first compile builds the parser (~0.1 s of a proxy's start-up).
_EMPTY_POLICY: CompiledPolicy | None = None


def _empty_policy() -> CompiledPolicy:
    global _EMPTY_POLICY
    if _EMPTY_POLICY is None:
        from firewall.policy import compile_source  # the parser (lark): only a proxy with no policy needs it

        _EMPTY_POLICY = compile_source("default block\n", "<no policy applied>").policy
    return _EMPTY_POLICY


@dataclass(frozen=True)
class LivePolicy:
    policy: CompiledPolicy
    version: int | None  # None: a policy given to this proxy alone (`run --policy`), or none applied


class Runtime:
    """Shared, read-mostly state of one proxy process."""

    def __init__(
        self,
        home: Home,
        pinned_policy: CompiledPolicy | None = None,
        on_problem: Callable[[str, str | None], None] | None = None,
        on_policy: Callable[[dict], None] | None = None,
    ):
        self.home = home
        self.pinned = pinned_policy is not None
        self.on_policy = on_policy  # told the version now in force ({"version", "sha256"}), for `proxy status`
        # Until load(): the pinned policy, or none at all (the proxy serves nothing before load()).
        self.live = LivePolicy(pinned_policy, None)  # type: ignore[arg-type]
        self.secrets: dict[str, str] = {}
        self._secret_index: tuple[dict[str, str], SecretIndex] | None = None
        self.tokens: dict[str, str] = {}  # token sha256 -> agent
        self.unisolated: frozenset[str] = frozenset()  # token sha256s of `firewall run --no-isolate` runs
        self.vault = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._used: set[str] = set()
        self._used_at = 0.0  # when one of `_used` was last used (epoch seconds)
        self._used_flushed = 0.0
        self._used_lock = threading.Lock()
        # One outage each: what fails is logged once and reported through `on_problem` (the state file).
        self.outages = {
            name: Outage(log, what, on_change=on_problem)
            for name, what in (
                ("policy", "loading the active policy version"),
                ("tokens", "reading agent tokens"),
                ("vault", "reading the vault"),
                ("usage", "recording when secrets were last used"),
            )
        }

    # ---- start-up and the watcher ----

    def load(self) -> None:
        """Read everything once, before the proxy accepts connections; errors stop the start."""
        from firewall.vault import Vault

        self.vault = Vault.open(self.home) if self.home.vault.exists() else None
        self.secrets = self.vault.values() if self.vault else {}
        db = open_plain(self.home.database)
        try:
            self._refresh_policy(db)
            self._refresh_tokens(db)
        finally:
            db.close()
        if self.live.policy is None:
            self.live = LivePolicy(_empty_policy(), None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="firewall-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._flush_used(force=True)

    def _watch(self) -> None:
        db = open_plain(self.home.database)
        try:
            while not self._stop.wait(POLL_INTERVAL):
                self._guarded("policy", lambda: self._refresh_policy(db))
                self._guarded("tokens", lambda: self._refresh_tokens(db))
                self._guarded("vault", self._refresh_vault)
                self._flush_used()
        finally:
            db.close()

    def _guarded(self, name: str, refresh: Callable[[], None]) -> None:
        """Run one refresh; a failure keeps the previous value and is said once (see outages.py)."""
        outage = self.outages[name]
        try:
            refresh()
        except KNOWN_FAILURES as exc:
            outage.failed(str(exc), consequence=self._keeping(name))
        except Exception as exc:  # not a condition we know: say it with its traceback, once
            outage.failed(f"{type(exc).__name__}: {exc}", unexpected=True, consequence=self._keeping(name))
        else:
            outage.ok()

    def _keeping(self, name: str) -> str:
        if name == "policy":
            if self.live.version is None:
                return "no policy version was loaded yet, so every request stays refused"
            return f"policy version {self.live.version} stays in force"
        if name == "vault":
            return "the proxy keeps the secrets it last read"
        if name == "tokens":
            return "the proxy keeps the tokens it last read"
        return ""

    def _refresh_policy(self, db) -> None:
        if self.pinned:
            return
        marker = policy_store.active_marker(db)
        if marker is None or marker[0] == self.live.version:
            return
        version = policy_store.get_version(db, marker[0])
        self.live = LivePolicy(version.load(), version.version)
        log.info("policy version %s (%s) is in force", version.version, version.sha256[:12])
        if self.on_policy is not None:
            self.on_policy({"version": version.version, "sha256": version.sha256})

    def _refresh_tokens(self, db) -> None:
        """Live tokens: not revoked, and their run still alive (a run killed with SIGKILL
        could not revoke its token; its lease ends with it, seen here within one poll)."""
        live = agents.live_token_details(db)
        self.unisolated = frozenset(digest for digest, token in live.items() if not token.isolated)
        self.tokens = {digest: token.agent for digest, token in live.items()}

    def _refresh_vault(self) -> None:
        from firewall.vault import Vault

        if self.vault is None:
            if not self.home.vault.exists():
                return
            self.vault = Vault.open(self.home)
        elif not self.vault.reload_if_changed():
            return
        self.secrets = self.vault.values()
        log.info("the vault changed: %d secret(s) in use", len(self.secrets))

    # ---- used by the addons, on the event loop ----

    @property
    def policy(self) -> CompiledPolicy:
        return self.live.policy

    def agent_for_token_hash(self, digest: str) -> str | None:
        return self.tokens.get(digest)

    def lookup_token_now(self, token: str) -> str | None:
        """A token minted after the last poll: ask the database (call off the event loop)."""
        db = open_plain(self.home.database)
        try:
            live = agents.live_token_details(db).get(agents.token_hash(token))
        finally:
            db.close()
        agent = live.agent if live else None
        if agent is not None:
            digest = agents.token_hash(token)
            if not live.isolated:
                self.unisolated = self.unisolated | {digest}
            self.tokens = {**self.tokens, digest: agent}
        return agent

    def isolation_note(self, digest: str | None, detail: str | None) -> str | None:
        """`detail` for an audit row, marked when the row's agent runs without isolation."""
        if digest is None or digest not in self.unisolated:
            return detail
        return f"{NOT_ISOLATED}; {detail}" if detail else NOT_ISOLATED

    def secret(self, name: str) -> str | None:
        return self.secrets.get(name)

    @property
    def secret_index(self) -> SecretIndex:
        """Every vault value indexed for the exfiltration scan and scrubbing; rebuilt when
        `secrets` is replaced (a swap of the whole dict, as the watcher does)."""
        secrets, cached = self.secrets, self._secret_index
        if cached is None or cached[0] is not secrets:
            cached = self._secret_index = (secrets, SecretIndex.build(secrets))
        return cached[1]

    def note_used(self, names) -> None:
        with self._used_lock:
            self._used.update(names)
            self._used_at = time.time()

    def _flush_used(self, force: bool = False) -> None:
        """Write the last-used times, at most every USAGE_EVERY seconds (and at the stop); each
        name is stamped with the latest use in the window, so it is at most that much late."""
        if not force and time.monotonic() - self._used_flushed < USAGE_EVERY:
            return
        self._used_flushed = time.monotonic()
        with self._used_lock:
            used, self._used = self._used, set()
            when = datetime.fromtimestamp(self._used_at, UTC).replace(microsecond=0)
        if used and self.vault is not None:
            self._guarded("usage", lambda: self.vault.mark_used(sorted(used), when))


def pinned_policy_from(path: Path) -> CompiledPolicy:
    """A compiled policy handed to this proxy alone (by `firewall run --policy`)."""
    return CompiledPolicy.from_json(path.read_text(encoding="utf-8"))
