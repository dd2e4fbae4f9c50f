"""The vault file: JSON with a header (how to get the key, a key-check value) and entries.

    {
      "format": "agent-firewall-vault",
      "version": 1,
      "key": {"mode": "keyfile"}
          or {"mode": "passphrase", "kdf": "scrypt", "salt": B64, "n": 32768, "r": 8, "p": 1},
      "check": {"nonce": B64, "ciphertext": B64},
      "entries": {
        NAME: {"provider": "openai", "created": ISO, "updated": ISO,
               "nonce": B64, "ciphertext": B64, "fingerprint": "1a2b3c4d"}
      }
    }

`check` is CHECK_PLAINTEXT sealed with the vault key: decrypting it tells a
wrong key or passphrase apart from a damaged entry. Each entry's ciphertext is
bound to its name and provider (`entry_aad`), so moving ciphertexts between
entries makes them fail to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firewall.vault.crypto import KeyMode, KeySource, ScryptParams, Sealed
from firewall.vault.errors import DamagedVault, VaultError

FORMAT = "agent-firewall-vault"
VERSION = 1
CHECK_PLAINTEXT = b"agent-firewall vault key check"
CHECK_AAD = b"agent-firewall vault v1 check"


def entry_aad(name: str, provider: str) -> bytes:
    return json.dumps(["agent-firewall vault v1 entry", name, provider]).encode()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Entry:
    provider: str
    created: datetime
    updated: datetime
    sealed: Sealed
    fingerprint: str


@dataclass(frozen=True)
class Document:
    """One vault file's content. Treat `entries` as read-only; use the `with_`/`without` methods."""

    source: KeySource
    check: Sealed
    entries: Mapping[str, Entry]

    def with_entry(self, name: str, entry: Entry) -> Document:
        return replace(self, entries={**self.entries, name: entry})

    def without(self, name: str) -> Document:
        return replace(self, entries={k: v for k, v in self.entries.items() if k != name})


class _Corrupt(Exception):
    """A structural problem at a location inside the document; parse_document adds the path."""


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _Corrupt(f"{where}{key} is missing")
    value = obj[key]
    # bool is an int subclass; a flag is never a valid number here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Corrupt(f"{where}{key} should be a {kind.__name__}")
    return value


def _b64(obj: Any, key: str, where: str) -> bytes:
    try:
        return base64.b64decode(_field(obj, key, str, where), validate=True)
    except binascii.Error as exc:
        raise _Corrupt(f"{where}{key} is not base64") from exc


def _time(obj: Any, key: str, where: str) -> datetime:
    text = _field(obj, key, str, where)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _Corrupt(f"{where}{key} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise _Corrupt(f"{where}{key} has no time zone")
    return parsed


def _sealed(obj: Any, where: str) -> Sealed:
    return Sealed(nonce=_b64(obj, "nonce", where), ciphertext=_b64(obj, "ciphertext", where))


def _source(obj: Any) -> KeySource:
    mode = _field(obj, "mode", str, "key.")
    if mode == KeyMode.KEY_FILE:
        return KeySource.key_file()
    if mode != KeyMode.PASSPHRASE:
        raise _Corrupt(f"key.mode {mode!r} is neither {KeyMode.KEY_FILE!r} nor {KeyMode.PASSPHRASE!r}")
    if _field(obj, "kdf", str, "key.") != "scrypt":
        raise _Corrupt("key.kdf is not 'scrypt'")
    params = ScryptParams(
        salt=_b64(obj, "salt", "key."),
        n=_field(obj, "n", int, "key."),
        r=_field(obj, "r", int, "key."),
        p=_field(obj, "p", int, "key."),
    )
    if problem := params.problem():
        raise _Corrupt(f"key: scrypt {problem}")
    return KeySource.passphrase(params)


def _entry(obj: Any, name: str) -> Entry:
    where = f"entries.{name}."
    return Entry(
        provider=_field(obj, "provider", str, where),
        created=_time(obj, "created", where),
        updated=_time(obj, "updated", where),
        sealed=_sealed(obj, where),
        fingerprint=_field(obj, "fingerprint", str, where),
    )


def parse_document(data: bytes, path: Path) -> Document:
    """Read a vault file's bytes; any structural problem is a VaultError naming `path` and the field."""
    try:
        try:
            top = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Corrupt(f"not valid JSON ({exc})") from exc
        if _field(top, "format", str, "") != FORMAT:
            raise _Corrupt(f"format is not {FORMAT!r}")
        version = _field(top, "version", int, "")
        if version != VERSION:
            raise VaultError(
                f"vault file {path} has format version {version}; this firewall reads "
                f"version {VERSION} (upgrade agent-firewall)"
            )
        entries = _field(top, "entries", dict, "")
        return Document(
            source=_source(_field(top, "key", dict, "")),
            check=_sealed(_field(top, "check", dict, ""), "check."),
            entries={name: _entry(entry, name) for name, entry in entries.items()},
        )
    except _Corrupt as exc:
        raise DamagedVault(f"vault file {path} is corrupt: {exc}") from None


def _b64text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _dump_source(source: KeySource) -> dict[str, Any]:
    if source.scrypt is None:
        return {"mode": str(source.mode)}
    params = source.scrypt
    return {
        "mode": str(source.mode),
        "kdf": "scrypt",
        "salt": _b64text(params.salt),
        "n": params.n,
        "r": params.r,
        "p": params.p,
    }


def dump_document(doc: Document) -> bytes:
    top = {
        "format": FORMAT,
        "version": VERSION,
        "key": _dump_source(doc.source),
        "check": {"nonce": _b64text(doc.check.nonce), "ciphertext": _b64text(doc.check.ciphertext)},
        "entries": {
            name: {
                "provider": entry.provider,
                "created": format_time(entry.created),
                "updated": format_time(entry.updated),
                "nonce": _b64text(entry.sealed.nonce),
                "ciphertext": _b64text(entry.sealed.ciphertext),
                "fingerprint": entry.fingerprint,
            }
            for name, entry in sorted(doc.entries.items())
        },
    }
    return (json.dumps(top, indent=2) + "\n").encode()
