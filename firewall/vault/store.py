"""The Vault: named secrets, encrypted in one file, decrypted only in memory on request.

Readers never lock: every write replaces the file atomically, so a reader sees
the old or the new version whole. Writers (add, remove, mark_used) hold an
exclusive lock on `vault.lock` and re-read the file first, so two processes
writing at once lose nothing. Every write goes to the backup first
(`vault.json.bak`, firewall/vault/backup.py), and a damaged vault's error
names it and `firewall secrets restore-backup`.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag

from firewall.state.home import Home, check_private_file, write_private_file
from firewall.vault.backup import backup_path, way_out
from firewall.vault.crypto import (
    KeyMode,
    KeySource,
    MasterKey,
    ScryptParams,
    create_key_file,
    derive_from_passphrase,
    passphrase_from_env,
    read_key_file,
    unlock,
)
from firewall.vault.errors import DamagedVault, MissingSecret, VaultError
from firewall.vault.format import (
    CHECK_AAD,
    CHECK_PLAINTEXT,
    Document,
    Entry,
    dump_document,
    entry_aad,
    now,
    parse_document,
)
from firewall.vault.providers import recognise, validate_value
from firewall.vault.usage import read_usage, write_usage

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class EntryInfo:
    """What may be shown about an entry: everything but the value."""

    name: str
    provider: str
    created: datetime
    updated: datetime
    last_used: datetime | None
    fingerprint: str


@dataclass(frozen=True)
class _FileSignature:
    """Changes whenever the file is replaced or rewritten."""

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat: os.stat_result) -> _FileSignature:
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_size)


def check_name(name: str) -> None:
    """Refuse names that are malformed or that look like a secret typed in the wrong place."""
    if (provider := recognise(name)) is not None:
        raise VaultError(
            f"that secret name looks like a credential itself ({provider.name}): pass a name, and the "
            "value with --stdin, --from-env, --file or the prompt"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise VaultError(
            f"invalid secret name {name!r}: use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def usage_path(home: Home) -> Path:
    return home.root / "vault-usage.json"


@contextmanager
def _locked(home: Home) -> Iterator[None]:
    fd = os.open(home.root / "vault.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _create(home: Home) -> None:
    """Write an empty vault, in passphrase mode when $FIREWALL_PASSPHRASE is set."""
    passphrase = passphrase_from_env()
    if passphrase is not None:
        params = ScryptParams.fresh()
        source = KeySource.passphrase(params)
        key = derive_from_passphrase(passphrase, params)
    else:
        source = KeySource.key_file()
        # A key file without a vault is kept: `firewall init` may have made it.
        key = read_key_file(home.master_key) if home.master_key.exists() else create_key_file(home.master_key)
    doc = Document(source=source, check=key.seal(CHECK_PLAINTEXT, CHECK_AAD), entries={})
    _write_with_backup(home.vault, dump_document(doc))


def _write_with_backup(path: Path, data: bytes) -> None:
    """The backup first, then the vault: each atomic, so one of them always holds a whole good vault."""
    write_private_file(backup_path(path), data)
    write_private_file(path, data)


def _read(path: Path) -> tuple[Document, _FileSignature]:
    try:
        check_private_file(path)
        with open(path, "rb") as handle:
            signature = _FileSignature.of(os.fstat(handle.fileno()))
            data = handle.read()
    except FileNotFoundError:
        hint = f"; {way_out(path)}" if backup_path(path).exists() else " (run: firewall init)"
        raise VaultError(f"vault file {path} does not exist{hint}") from None
    try:
        return parse_document(data, path), signature
    except DamagedVault as exc:
        raise DamagedVault(f"{exc}; {way_out(path)}") from None


def _verify_key(key: MasterKey, doc: Document, home: Home) -> None:
    try:
        ok = key.unseal(doc.check, CHECK_AAD) == CHECK_PLAINTEXT
    except InvalidTag:
        ok = False
    if ok:
        return
    if doc.source.mode is KeyMode.PASSPHRASE:
        raise VaultError(f"wrong passphrase for vault {home.vault}")
    raise DamagedVault(
        f"key file {home.master_key} does not unlock vault {home.vault}: "
        f"the key file was replaced or the vault file was modified; if the vault file was, {way_out(home.vault)}"
    )


class Vault:
    """An open vault. Build with `Vault.open(home)`."""

    def __init__(self, home: Home, key: MasterKey, doc: Document, signature: _FileSignature) -> None:
        self._home = home
        self._key = key
        self._doc = doc
        self._signature = signature

    @classmethod
    def open(cls, home: Home) -> Vault:
        """Open the vault of `home`, creating it (and a key file, in key-file mode) on first use."""
        if not home.vault.exists():
            with _locked(home):
                if not home.vault.exists():
                    _create(home)
        doc, signature = _read(home.vault)
        key = unlock(doc.source, home.master_key, home.vault)
        _verify_key(key, doc, home)
        return cls(home, key, doc, signature)

    @property
    def path(self) -> Path:
        return self._home.vault

    @property
    def mode(self) -> KeyMode:
        return self._doc.source.mode

    # Reading

    def names(self) -> list[str]:
        return sorted(self._doc.entries)

    def get(self, name: str) -> str:
        """The decrypted value of `name`; MissingSecret when there is none."""
        entry = self._doc.entries.get(name)
        if entry is None:
            raise MissingSecret(f'no secret named "{name}" in vault {self.path}')
        try:
            plaintext = self._key.unseal(entry.sealed, entry_aad(name, entry.provider))
        except InvalidTag:
            raise DamagedVault(
                f'vault entry "{name}" failed authentication: the vault file was modified '
                f"or the key is wrong ({self.path}); {way_out(self.path)}"
            ) from None
        return plaintext.decode()

    def values(self) -> dict[str, str]:
        """Every entry decrypted, by name."""
        return {name: self.get(name) for name in self.names()}

    def entries(self) -> list[EntryInfo]:
        last_used = read_usage(usage_path(self._home))
        return [self._info(name, last_used.get(name)) for name in self.names()]

    def _info(self, name: str, last_used: datetime | None) -> EntryInfo:
        entry = self._doc.entries[name]
        return EntryInfo(name, entry.provider, entry.created, entry.updated, last_used, entry.fingerprint)

    # Staying current

    def reload_if_changed(self) -> bool:
        """Re-read the vault file if it changed on disk since this instance last read it."""
        try:
            current = _FileSignature.of(os.stat(self.path))
        except FileNotFoundError:
            raise VaultError(f"vault file {self.path} has disappeared; {way_out(self.path)}") from None
        if current == self._signature:
            return False
        self._load()
        return True

    def _load(self) -> None:
        doc, signature = _read(self.path)
        same_source = doc.source == self._doc.source
        key = self._key if same_source else unlock(doc.source, self._home.master_key, self.path)
        _verify_key(key, doc, self._home)
        self._doc, self._key, self._signature = doc, key, signature

    # Writing

    def _write(self, doc: Document) -> None:
        _write_with_backup(self.path, dump_document(doc))
        self._doc = doc
        self._signature = _FileSignature.of(os.stat(self.path))

    def add(self, name: str, value: str, provider: str, force: bool = False) -> EntryInfo:
        """Store `value` under `name`; with `force`, replace an existing entry (keeping its created time)."""
        check_name(name)
        validate_value(provider, value)
        with _locked(self._home):
            self._load()  # the latest version, so a concurrent writer's change survives
            old = self._doc.entries.get(name)
            if old is not None and not force:
                raise VaultError(
                    f'a secret named "{name}" already exists in vault {self.path}; use --force to replace it'
                )
            stamp = now()
            entry = Entry(
                provider=provider,
                created=old.created if old is not None else stamp,
                updated=stamp,
                sealed=self._key.seal(value.encode(), entry_aad(name, provider)),
                fingerprint=self._key.fingerprint(value),
            )
            self._write(self._doc.with_entry(name, entry))
            last_used = read_usage(usage_path(self._home)).get(name)
        return self._info(name, last_used)

    def remove(self, name: str) -> None:
        with _locked(self._home):
            self._load()
            if name not in self._doc.entries:
                raise MissingSecret(f'no secret named "{name}" in vault {self.path}')
            self._write(self._doc.without(name))
            usage = read_usage(usage_path(self._home))
            if usage.pop(name, None) is not None:
                write_usage(usage_path(self._home), usage)

    def mark_used(self, names: Iterable[str], when: datetime | None = None) -> None:
        """Record that `names` were used at `when` (default: now) in vault-usage.json.

        Names not in the vault are ignored; an earlier time never overwrites a later one.
        """
        when = when if when is not None else now()
        with _locked(self._home):
            usage = read_usage(usage_path(self._home))
            changed = False
            for name in names:
                if name in self._doc.entries and (name not in usage or usage[name] < when):
                    usage[name] = when
                    changed = True
            if changed:
                write_usage(usage_path(self._home), usage)


def restore_backup(home: Home) -> int:
    """Put the last good copy (`vault.json.bak`) back as the vault; the damaged file is kept aside as
    `vault.json.damaged`. Refuses when the vault reads fine, or when the backup does not unlock
    with the key in use. Returns the number of entries restored."""
    vault, backup = home.vault, backup_path(home.vault)
    with _locked(home):
        if not backup.exists():
            raise VaultError(f"there is no backup of the vault ({backup}); {way_out(vault)}")
        try:
            doc, _ = _read(backup)
        except DamagedVault as exc:
            raise VaultError(f"the backup {backup} cannot be read either: {str(exc).partition('; ')[0]}") from None
        key = unlock(doc.source, home.master_key, backup)
        try:
            _verify_key(key, doc, home)
            for name, entry in doc.entries.items():
                key.unseal(entry.sealed, entry_aad(name, entry.provider))
        except (DamagedVault, InvalidTag):
            raise VaultError(
                f"the backup {backup} does not unlock with {home.master_key} either; "
                "add the secrets again with `firewall secrets add NAME`"
            ) from None
        if vault.exists() and _reads_fine(home):
            raise VaultError(f"vault {vault} reads fine; nothing to restore")
        if vault.exists():
            os.replace(vault, vault.with_name(vault.name + ".damaged"))
        write_private_file(vault, dump_document(doc))
    return len(doc.entries)


def _reads_fine(home: Home) -> bool:
    try:
        Vault.open(home).values()
    except VaultError:
        return False
    return True
