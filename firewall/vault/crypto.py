"""Where the vault's master key comes from, and what it does: AES-256-GCM and fingerprints.

A vault is unlocked in one of two ways, recorded in its header as a `KeySource`:

- key file: 32 random bytes in `home.master_key` (0600), created on first need;
- passphrase: the key is derived from `$FIREWALL_PASSPHRASE` with scrypt and
  exists only in memory.

The 32-byte root key is never used directly: HKDF derives one subkey for
encryption and one for fingerprints, so the two uses cannot interact.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from enum import StrEnum
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from firewall.state.home import check_private_file, write_private_file
from firewall.vault import handoff
from firewall.vault.errors import VaultError

PASSPHRASE_ENV = "FIREWALL_PASSPHRASE"
KEY_BYTES = 32
NONCE_BYTES = 12
SALT_BYTES = 16
FINGERPRINT_HEX_CHARS = 8

# Bounds for scrypt parameters read from a vault header: a tampered header must
# not be able to make unlocking take gigabytes of memory or minutes of CPU.
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_R = 16
_MAX_SCRYPT_P = 4
_MAX_SCRYPT_MEMORY = 256 * 2**20  # scrypt uses 128 * n * r bytes


class KeyMode(StrEnum):
    KEY_FILE = "keyfile"
    PASSPHRASE = "passphrase"


@dataclass(frozen=True)
class ScryptParams:
    salt: bytes
    n: int = 2**15
    r: int = 8
    p: int = 1

    @classmethod
    def fresh(cls) -> ScryptParams:
        return cls(salt=os.urandom(SALT_BYTES))

    def problem(self) -> str | None:
        """Why these parameters must not be used, or None when they are sane."""
        if len(self.salt) < SALT_BYTES:
            return f"salt is {len(self.salt)} bytes, expected at least {SALT_BYTES}"
        if self.n < 2 or self.n > _MAX_SCRYPT_N or self.n & (self.n - 1):
            return f"n={self.n} is not a power of two up to {_MAX_SCRYPT_N}"
        if not 1 <= self.r <= _MAX_SCRYPT_R:
            return f"r={self.r} is outside 1..{_MAX_SCRYPT_R}"
        if not 1 <= self.p <= _MAX_SCRYPT_P:
            return f"p={self.p} is outside 1..{_MAX_SCRYPT_P}"
        if 128 * self.n * self.r > _MAX_SCRYPT_MEMORY:
            return f"n={self.n}, r={self.r} need more than {_MAX_SCRYPT_MEMORY // 2**20} MiB"
        return None


@dataclass(frozen=True)
class KeySource:
    """How a vault's master key is obtained; `scrypt` is set only in passphrase mode."""

    mode: KeyMode
    scrypt: ScryptParams | None = None

    def __post_init__(self) -> None:
        if (self.mode is KeyMode.PASSPHRASE) != (self.scrypt is not None):
            raise ValueError("scrypt parameters belong to passphrase mode, and only to it")

    @classmethod
    def key_file(cls) -> KeySource:
        return cls(KeyMode.KEY_FILE)

    @classmethod
    def passphrase(cls, params: ScryptParams) -> KeySource:
        return cls(KeyMode.PASSPHRASE, params)


@dataclass(frozen=True)
class Sealed:
    """One AES-GCM encryption: the nonce and the ciphertext with its tag."""

    nonce: bytes
    ciphertext: bytes


def _subkey(root: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=None,
        info=b"agent-firewall vault v1 " + purpose,
    ).derive(root)


@dataclass(frozen=True)
class MasterKey:
    """The unlocked vault key. Build with `from_root`; it is never written by this class."""

    encryption_key: bytes = field(repr=False)
    fingerprint_key: bytes = field(repr=False)

    @classmethod
    def from_root(cls, root: bytes) -> MasterKey:
        if len(root) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, got {len(root)}")
        return cls(_subkey(root, b"encryption"), _subkey(root, b"fingerprint"))

    def seal(self, plaintext: bytes, associated_data: bytes) -> Sealed:
        """Encrypt with a fresh random nonce; `associated_data` must match to decrypt."""
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(nonce, AESGCM(self.encryption_key).encrypt(nonce, plaintext, associated_data))

    def unseal(self, sealed: Sealed, associated_data: bytes) -> bytes:
        """Decrypt; raises `cryptography.exceptions.InvalidTag` on any mismatch."""
        return AESGCM(self.encryption_key).decrypt(sealed.nonce, sealed.ciphertext, associated_data)

    def fingerprint(self, value: str) -> str:
        """A short keyed digest: tells two values apart without revealing either."""
        digest = hmac.new(self.fingerprint_key, value.encode(), sha256).hexdigest()
        return digest[:FINGERPRINT_HEX_CHARS]


def passphrase_from_env() -> str | None:
    """The passphrase handed over by pipe (`firewall.vault.handoff`), else `$FIREWALL_PASSPHRASE`;
    None when neither is there; an empty value is an error, not "no passphrase"."""
    if (held := handoff.held()) is not None:
        return held
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase == "":
        raise VaultError(f"{PASSPHRASE_ENV} is set but empty; set a passphrase or unset it")
    return passphrase


def derive_from_passphrase(passphrase: str, params: ScryptParams) -> MasterKey:
    kdf = Scrypt(salt=params.salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return MasterKey.from_root(kdf.derive(passphrase.encode()))


def read_key_file(path: Path) -> MasterKey:
    """The key in an existing key file; refuses a missing, loose or malformed one."""
    if not path.exists():
        raise VaultError(
            f"key file {path} is missing; the vault cannot be decrypted without it (restore it from a backup)"
        )
    check_private_file(path)
    root = path.read_bytes()
    if len(root) != KEY_BYTES:
        raise VaultError(f"key file {path} is corrupt: expected {KEY_BYTES} bytes, found {len(root)}")
    return MasterKey.from_root(root)


def create_key_file(path: Path) -> MasterKey:
    """Write a new random key to `path` (0600). The caller ensures none exists yet."""
    root = os.urandom(KEY_BYTES)
    write_private_file(path, root)
    return MasterKey.from_root(root)


def unlock(source: KeySource, key_file: Path, vault: Path) -> MasterKey:
    """The master key of the existing vault file `vault`, whose header says `source`."""
    if source.scrypt is None:  # key-file mode; KeySource guarantees the pairing
        return read_key_file(key_file)
    passphrase = passphrase_from_env()
    if passphrase is None:
        raise VaultError(f"vault {vault} is protected by a passphrase: set {PASSPHRASE_ENV}")
    return derive_from_passphrase(passphrase, source.scrypt)
