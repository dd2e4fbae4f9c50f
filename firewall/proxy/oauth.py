"""Keeping OAuth logins fresh inside the proxy, on its event loop.

    access = await keeper.access(injection)          # a valid access token, refreshed first if due
    access = await keeper.after_unauthorized(access) # upstream said 401: refresh once, or None

Per login (vault entry) there is at most one refresh at a time: the first
request that finds the token due starts it as a task, every other request
awaits that task. A refresh holds a file lock, so two proxies sharing the vault
never spend the same refresh token twice, and re-reads the vault first, in
case another proxy already refreshed. A rotated refresh token is written to
the vault (atomically) before the new access token is used.

A dead refresh token stops all refreshing of that login until a person
re-imports it; a transient failure keeps the old tokens, uses the old access
token while it is still valid, and waits longer before each new attempt.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from firewall.oauth.endpoint import EndpointUnavailable, LoginDead, RefreshFailed, refresh_tokens
from firewall.oauth.login import InvalidLogin, Login, parse_login
from firewall.oauth.settings import OAuthSettings
from firewall.oauth.status import LoginStatus, State, record_status
from firewall.policy import Injection
from firewall.proxy.inject import CredentialUnavailable, OAuthAccess
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.resolver import Resolver
from firewall.state.home import Home, StateError
from firewall.vault import VaultError

if TYPE_CHECKING:  # httpx loads with the first refresh (upstream_client.py)
    import httpx

log = logging.getLogger("firewall.proxy")

BACKOFF_BASE = 2.0  # seconds before the first new attempt after a failed refresh; doubles each time
BACKOFF_MAX = 120.0
REFRESH_AFTER_401_COOLDOWN = 30.0  # a token this proxy got so recently is not refreshed again on a 401
LOCK_WAIT = 60.0  # how long a refresh waits for another proxy's refresh of the same login


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def relogin_hint(name: str) -> str:
    return (
        f"log in again (`codex login`), then re-import the login: "
        f"firewall secrets add {name} --provider codex --file ~/.codex/auth.json --force"
    )


@dataclass
class _Slot:
    """One login's state; touched only on the event loop."""

    login: Login
    source: str = field(repr=False)  # the vault text `login` was read from or saved as
    generation: int = 0
    refreshed_at: float | None = None  # when this proxy last got new tokens
    task: asyncio.Task | None = None
    dead: str | None = None  # why the refresh token is dead
    failure: str | None = None  # the last transient failure
    failures: int = 0
    retry_at: float = 0.0
    pending: tuple[Login, str] | None = field(default=None, repr=False)  # refreshed, not saved to the vault yet
    superseded: set[str] = field(default_factory=set)  # digests of texts replaced by our refreshes

    @property
    def refreshing(self) -> bool:
        return self.task is not None and not self.task.done()


class _VaultAccess:
    """The keeper's own Vault handle, used from executor threads one call at a time."""

    def __init__(self, home: Home):
        self.home = home
        self._vault = None
        self._lock = threading.Lock()

    def _open(self):
        from firewall.vault import Vault

        if self._vault is None:
            self._vault = Vault.open(self.home)
        else:
            self._vault.reload_if_changed()
        return self._vault

    def read(self, name: str) -> tuple[str | None, str | None]:
        """(value, fingerprint) of entry `name` as the vault file holds it now."""
        with self._lock:
            vault = self._open()
            info = next((e for e in vault.entries() if e.name == name), None)
            return (vault.get(name), info.fingerprint) if info else (None, None)

    def save(self, name: str, text: str) -> str:
        with self._lock:
            vault = self._open()
            info = next((e for e in vault.entries() if e.name == name), None)
            provider = info.provider if info else "codex"
            return vault.add(name, text, provider, force=True).fingerprint


class TokenKeeper:
    def __init__(
        self,
        home: Home,
        secret: Callable[[str], str | None],
        resolver: Resolver,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ):
        self.home = home
        self.secret = secret  # the runtime's current vault values
        self.resolver = resolver
        self.client = client
        self.clock = clock
        self._vault = _VaultAccess(home)
        self._slots: dict[str, _Slot] = {}

    # ---- used by the enforcer and the reauthorize addon ----

    async def access_all(self, injections: Iterable[Injection]) -> dict[str, OAuthAccess]:
        """Tokens for every oauth injection, by credential name; CredentialUnavailable if one has none."""
        return {i.credential: await self.access(i) for i in injections if i.kind == "oauth"}

    async def access(self, injection: Injection) -> OAuthAccess:
        settings = OAuthSettings.from_pairs(injection.settings)
        slot = self._slot(injection)
        refreshed = False
        while True:
            if slot.dead:
                raise self._needs_login(injection, slot)
            if slot.refreshing:
                await asyncio.shield(slot.task)
                refreshed = True
                continue
            now = self.clock()
            if not slot.login.due(now, settings.margin):
                return self._grant(injection, slot, settings)
            if refreshed or now < slot.retry_at:  # one refresh per request; none while backing off
                if not slot.login.expired(now):
                    return self._grant(injection, slot, settings)  # the old token still works
                raise self._unavailable(injection, slot)
            self._start(injection, slot, settings, after_401=False)

    async def after_unauthorized(self, injection: Injection, used: OAuthAccess) -> OAuthAccess | None:
        """Upstream refused `used` with 401: an access token to try once more, or None to pass the 401 on."""
        settings = OAuthSettings.from_pairs(injection.settings)
        slot = self._slots.get(injection.secret)
        if slot is None:
            return None
        if slot.refreshing:
            await asyncio.shield(slot.task)
        if slot.dead:
            raise self._needs_login(injection, slot)
        if slot.generation != used.generation:
            return self._grant(injection, slot, settings)  # already refreshed since `used` was handed out
        now = self.clock()
        if slot.refreshed_at is not None and now - slot.refreshed_at < REFRESH_AFTER_401_COOLDOWN:
            return None  # a token we just got was refused: a new one will not do better
        if now < slot.retry_at:
            raise self._unavailable(injection, slot)
        await asyncio.shield(self._start(injection, slot, settings, after_401=True))
        if slot.dead:
            raise self._needs_login(injection, slot)
        if slot.generation != used.generation:
            return self._grant(injection, slot, settings)
        raise self._unavailable(injection, slot)

    # ---- the login's current value ----

    def _slot(self, injection: Injection) -> _Slot:
        name = injection.secret
        text = self.secret(name)
        if text is None:
            raise CredentialUnavailable(
                injection,
                f'the vault has no entry "{name}" for credential "{injection.credential}"; '
                f"add it with: firewall secrets add {name} --provider codex --file ~/.codex/auth.json",
            )
        slot = self._slots.get(name)
        if slot is not None and (text == slot.source or _digest(text) in slot.superseded or slot.refreshing):
            return slot
        try:
            login = parse_login(text)
        except InvalidLogin as exc:
            raise CredentialUnavailable(
                injection, f'vault entry "{name}" does not hold a usable login: the login {exc}'
            ) from None
        if slot is None:
            slot = self._slots[name] = _Slot(login, text)
        else:  # a person re-imported it, or another proxy refreshed it
            self._adopt(slot, login, text)
        return slot

    @staticmethod
    def _adopt(slot: _Slot, login: Login, text: str) -> None:
        slot.login, slot.source = login, text
        slot.generation += 1
        slot.dead = slot.failure = slot.pending = None
        slot.failures, slot.retry_at = 0, 0.0

    def _grant(self, injection: Injection, slot: _Slot, settings: OAuthSettings) -> OAuthAccess:
        return OAuthAccess(
            credential=injection.credential,
            entry=injection.secret,
            generation=slot.generation,
            access_token=slot.login.access_token,
            account_id=slot.login.account_id,
            account_header=settings.account_header,
        )

    def _needs_login(self, injection: Injection, slot: _Slot) -> CredentialUnavailable:
        return CredentialUnavailable(
            injection,
            f'the login in vault entry "{injection.secret}" can no longer be refreshed ({slot.dead}): '
            + relogin_hint(injection.secret),
            code=ProxyReason.CREDENTIAL_NEEDS_LOGIN,
        )

    def _unavailable(self, injection: Injection, slot: _Slot) -> CredentialUnavailable:
        wait = max(1, round(slot.retry_at - self.clock()))
        return CredentialUnavailable(
            injection,
            f'the access token of vault entry "{injection.secret}" could not be refreshed '
            f"({slot.failure or 'the token endpoint gave a token that is already expired'}); "
            f"the firewall tries again in {wait}s",
            code=ProxyReason.CREDENTIAL_REFRESH_FAILED,
            retry_after=wait,
        )

    # ---- refreshing ----

    def _start(self, injection: Injection, slot: _Slot, settings: OAuthSettings, after_401: bool) -> asyncio.Task:
        slot.task = asyncio.get_running_loop().create_task(self._refresh(injection.secret, slot, settings, after_401))
        return slot.task

    async def _refresh(self, name: str, slot: _Slot, settings: OAuthSettings, after_401: bool) -> None:
        await self._record(name, State.REFRESHING, None)
        try:
            async with self._process_lock(name):
                if slot.pending is None and await self._taken_over(name, slot, settings, after_401):
                    return
                if slot.pending is None:
                    answer = await self._call(settings, slot.login.refresh_token)
                    now = self.clock()
                    login = slot.login.refreshed(
                        access_token=answer.access_token,
                        refresh_token=answer.refresh_token,
                        id_token=answer.id_token,
                        expires_in=answer.expires_in,
                        now=now,
                    )
                    slot.pending = (login, login.to_json())
                login, text = slot.pending
                fingerprint = await self._io(self._vault.save, name, text)
        except LoginDead as exc:
            slot.dead = str(exc)
            log.warning('the refresh token of "%s" is dead (%s); refreshing stopped until it is re-imported', name, exc)
            await self._record(name, State.NEEDS_LOGIN, str(exc))
            return
        except Exception as exc:  # anything else: keep the old tokens, back off, try later
            slot.failures += 1
            if isinstance(exc, RefreshFailed):
                slot.failure = str(exc)
            elif isinstance(exc, VaultError | StateError | OSError):
                slot.failure = f"the vault could not be read or written: {exc}"
            else:
                log.exception('refreshing "%s" failed unexpectedly', name)
                slot.failure = f"internal error ({type(exc).__name__})"
            slot.retry_at = self.clock() + min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (slot.failures - 1))
            log.warning(
                'refreshing "%s" failed (%s); next attempt in %.0fs', name, slot.failure, slot.retry_at - self.clock()
            )
            await self._record(name, State.RETRYING, slot.failure)
            return
        slot.superseded.add(_digest(slot.source))
        slot.login, slot.source, slot.pending = login, text, None
        slot.generation += 1
        slot.refreshed_at = self.clock()
        slot.failures, slot.failure, slot.retry_at = 0, None, 0.0
        log.info('refreshed the access token of "%s"', name)
        await self._record(name, State.OK, None, fingerprint)

    async def _taken_over(self, name: str, slot: _Slot, settings: OAuthSettings, after_401: bool) -> bool:
        """Another proxy (or a person) changed the login since we read it: take that one instead.
        True when it needs no refresh of ours."""
        text, _ = await self._io(self._vault.read, name)
        if text is None or text == slot.source or _digest(text) in slot.superseded:
            return False
        try:
            login = parse_login(text)
        except InvalidLogin:
            return False
        self._adopt(slot, login, text)
        return after_401 or not login.due(self.clock(), settings.margin)

    async def _call(self, settings: OAuthSettings, refresh_token: str):
        parts = urlsplit(settings.token_url)
        host, port = (parts.hostname or "").lower().rstrip("."), parts.port or 443
        try:
            # The proxy connects only to pinned addresses; pin the token endpoint's.
            self.resolver.pin(host, port, await self.resolver.lookup(host, port))
        except OSError as exc:
            raise EndpointUnavailable(f"the token endpoint's host {host} could not be resolved ({exc})") from None
        return await refresh_tokens(self.client, settings, refresh_token)

    def _process_lock(self, name: str):
        return _FileLock(self.home.run_dir / f"oauth-{name}.lock", LOCK_WAIT)

    # ---- the disk, off the event loop ----

    async def _io(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def _record(self, name: str, state: State, detail: str | None, fingerprint: str | None = None) -> None:
        """Tell `secrets list` how this login is doing; a failure here never stops a request."""
        try:
            if fingerprint is None:
                _, fingerprint = await self._io(self._vault.read, name)
            if fingerprint is None:
                return
            status = LoginStatus(state, fingerprint, detail, datetime.now(UTC))
            await self._io(record_status, self.home, name, status)
        except Exception:
            log.exception('recording the state of login "%s" failed', name)


class _FileLock:
    """An exclusive flock, waited for on the event loop without blocking it."""

    def __init__(self, path, wait: float):
        self.path = path
        self.wait = wait
        self.fd: int | None = None

    async def __aenter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise EndpointUnavailable("another proxy has been refreshing this login for too long") from None
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None
