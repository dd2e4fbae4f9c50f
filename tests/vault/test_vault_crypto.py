from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.exceptions import InvalidTag

from firewall.vault.crypto import KeyMode, KeySource, MasterKey, ScryptParams, derive_from_passphrase


@pytest.fixture
def key() -> MasterKey:
    return MasterKey.from_root(os.urandom(32))


def test_seal_then_unseal_round_trips(key: MasterKey) -> None:
    sealed = key.seal(b"sk-secret", b"aad")
    assert b"sk-secret" not in sealed.ciphertext
    assert key.unseal(sealed, b"aad") == b"sk-secret"


def test_every_seal_uses_a_fresh_nonce(key: MasterKey) -> None:
    first, second = key.seal(b"same", b"aad"), key.seal(b"same", b"aad")
    assert len(first.nonce) == 12
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_unseal_refuses_other_associated_data(key: MasterKey) -> None:
    sealed = key.seal(b"value", b"entry openai")
    with pytest.raises(InvalidTag):
        key.unseal(sealed, b"entry github")


def test_unseal_refuses_another_key(key: MasterKey) -> None:
    sealed = key.seal(b"value", b"aad")
    with pytest.raises(InvalidTag):
        MasterKey.from_root(os.urandom(32)).unseal(sealed, b"aad")


def test_fingerprint_is_short_keyed_and_not_a_plain_hash(key: MasterKey) -> None:
    value = "sk-short"
    fingerprint = key.fingerprint(value)
    assert len(fingerprint) == 8 and int(fingerprint, 16) >= 0
    assert key.fingerprint(value) == fingerprint
    assert MasterKey.from_root(os.urandom(32)).fingerprint(value) != fingerprint
    assert not hashlib.sha256(value.encode()).hexdigest().startswith(fingerprint)


def test_master_key_repr_hides_the_key_material(key: MasterKey) -> None:
    assert key.encryption_key.hex() not in repr(key)
    assert "encryption_key" not in repr(key)


def test_passphrase_derivation_depends_on_passphrase_and_salt() -> None:
    params = ScryptParams(salt=b"s" * 16, n=2**10)
    sealed = derive_from_passphrase("one", params).seal(b"v", b"aad")
    assert derive_from_passphrase("one", params).unseal(sealed, b"aad") == b"v"
    with pytest.raises(InvalidTag):
        derive_from_passphrase("two", params).unseal(sealed, b"aad")
    with pytest.raises(InvalidTag):
        derive_from_passphrase("one", ScryptParams(salt=b"t" * 16, n=2**10)).unseal(sealed, b"aad")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (ScryptParams(salt=b"x" * 8), "salt is 8 bytes"),
        (ScryptParams(salt=b"x" * 16, n=3000), "not a power of two"),
        (ScryptParams(salt=b"x" * 16, n=2**30), "not a power of two up to"),
        (ScryptParams(salt=b"x" * 16, r=0), "r=0"),
        (ScryptParams(salt=b"x" * 16, p=99), "p=99"),
        (ScryptParams(salt=b"x" * 16, n=2**20, r=16), "need more than 256 MiB"),
    ],
)
def test_unsafe_scrypt_params_are_named(params: ScryptParams, problem: str) -> None:
    assert problem in (params.problem() or "")


def test_fresh_scrypt_params_are_sane_and_salted_randomly() -> None:
    first, second = ScryptParams.fresh(), ScryptParams.fresh()
    assert first.problem() is None
    assert first.salt != second.salt


def test_key_source_pairs_scrypt_params_with_passphrase_mode_only() -> None:
    with pytest.raises(ValueError):
        KeySource(KeyMode.PASSPHRASE)
    with pytest.raises(ValueError):
        KeySource(KeyMode.KEY_FILE, ScryptParams.fresh())
