from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firewall.state.home import Home, StateError
from firewall.vault import PASSPHRASE_ENV, InvalidValue, KeyMode, MissingSecret, Vault, VaultError, store

OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
OTHER_OPENAI_KEY = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0" * 2
GITHUB_TOKEN = "ghp_" + "a1B2" * 9
# A header asking for 2**40 scrypt iterations: must be refused, not attempted.
HUGE_SCRYPT_KEY = {"mode": "passphrase", "kdf": "scrypt", "salt": "A" * 22 + "==", "n": 2**40, "r": 8, "p": 1}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))  # an existing file keeps its 0600 mode


def test_add_then_get_round_trips(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    vault.add("gh", GITHUB_TOKEN, "github")
    assert vault.get("openai") == OPENAI_KEY
    assert vault.names() == ["gh", "openai"]
    assert vault.values() == {"gh": GITHUB_TOKEN, "openai": OPENAI_KEY}
    assert Vault.open(home).get("gh") == GITHUB_TOKEN


def test_vault_file_holds_no_plaintext_and_records_its_mode(home: Home) -> None:
    Vault.open(home).add("openai", OPENAI_KEY, "openai")
    text = home.vault.read_text()
    assert OPENAI_KEY not in text
    doc = json.loads(text)
    assert doc["version"] == 1
    assert doc["key"] == {"mode": "keyfile"}
    assert set(doc["entries"]["openai"]) == {"provider", "created", "updated", "nonce", "ciphertext", "fingerprint"}


def test_key_file_mode_creates_private_key_and_vault(home: Home) -> None:
    vault = Vault.open(home)
    assert vault.mode is KeyMode.KEY_FILE
    assert len(home.master_key.read_bytes()) == 32
    assert mode_of(home.master_key) == 0o600
    assert mode_of(home.vault) == 0o600


def test_writing_the_same_value_twice_gives_different_ciphertexts(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("a", OPENAI_KEY, "openai")
    vault.add("b", OPENAI_KEY, "openai")
    entries = read_json(home.vault)["entries"]
    assert entries["a"]["nonce"] != entries["b"]["nonce"]
    assert entries["a"]["ciphertext"] != entries["b"]["ciphertext"]
    assert entries["a"]["fingerprint"] == entries["b"]["fingerprint"]


def test_swapping_two_entries_ciphertexts_fails_authentication(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    vault.add("other", OTHER_OPENAI_KEY, "openai")
    doc = read_json(home.vault)
    a, b = doc["entries"]["openai"], doc["entries"]["other"]
    for field in ("nonce", "ciphertext"):
        a[field], b[field] = b[field], a[field]
    write_json(home.vault, doc)
    with pytest.raises(VaultError, match='vault entry "openai" failed authentication: the vault file was modified'):
        Vault.open(home).get("openai")


def test_relabelling_an_entrys_provider_fails_authentication(home: Home) -> None:
    Vault.open(home).add("k", "hunter2", "generic")
    doc = read_json(home.vault)
    doc["entries"]["k"]["provider"] = "openai"
    write_json(home.vault, doc)
    with pytest.raises(VaultError, match='vault entry "k" failed authentication'):
        Vault.open(home).get("k")


def test_a_flipped_ciphertext_byte_fails_authentication(home: Home) -> None:
    Vault.open(home).add("openai", OPENAI_KEY, "openai")
    doc = read_json(home.vault)
    raw = bytearray(base64.b64decode(doc["entries"]["openai"]["ciphertext"]))
    raw[5] ^= 0x01
    doc["entries"]["openai"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    write_json(home.vault, doc)
    with pytest.raises(VaultError, match="failed authentication"):
        Vault.open(home).get("openai")


def test_a_replaced_key_file_is_reported_as_not_matching(home: Home) -> None:
    Vault.open(home).add("openai", OPENAI_KEY, "openai")
    home.master_key.write_bytes(os.urandom(32))
    with pytest.raises(VaultError, match=f"key file {home.master_key} does not unlock vault {home.vault}"):
        Vault.open(home)


def test_a_missing_key_file_is_an_error_not_a_new_key(home: Home) -> None:
    Vault.open(home).add("openai", OPENAI_KEY, "openai")
    home.master_key.unlink()
    with pytest.raises(VaultError, match=f"key file {home.master_key} is missing"):
        Vault.open(home)
    assert not home.master_key.exists()


def test_a_truncated_key_file_is_corrupt(home: Home) -> None:
    Vault.open(home)
    home.master_key.write_bytes(b"short")
    with pytest.raises(VaultError, match="is corrupt: expected 32 bytes, found 5"):
        Vault.open(home)


@pytest.mark.parametrize("which", ["vault", "master_key"])
def test_loose_permissions_are_refused_with_the_chmod_fix(home: Home, which: str) -> None:
    Vault.open(home)
    path = getattr(home, which)
    path.chmod(0o644)
    with pytest.raises(StateError, match=f"fix with: chmod 600 {path}"):
        Vault.open(home)


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda doc: "{not json", "not valid JSON"),
        (lambda doc: {**doc, "format": "other"}, "format is not"),
        (lambda doc: {k: v for k, v in doc.items() if k != "check"}, "check is missing"),
        (lambda doc: {**doc, "key": {"mode": "magic"}}, "key.mode 'magic'"),
        (lambda doc: {**doc, "entries": {"x": {"provider": "generic"}}}, "entries.x.created is missing"),
        (lambda doc: {**doc, "check": {"nonce": "!!", "ciphertext": ""}}, "check.nonce is not base64"),
        (lambda doc: {**doc, "key": HUGE_SCRYPT_KEY}, "not a power of two up to"),
    ],
)
def test_a_corrupt_vault_file_names_the_file_and_the_problem(home: Home, mangle, problem: str) -> None:
    Vault.open(home)
    mangled = mangle(read_json(home.vault))
    home.vault.write_text(mangled if isinstance(mangled, str) else json.dumps(mangled))
    with pytest.raises(VaultError, match=f"vault file {home.vault} is corrupt: .*{problem}"):
        Vault.open(home)


def test_a_newer_format_version_asks_for_an_upgrade(home: Home) -> None:
    Vault.open(home)
    write_json(home.vault, {**read_json(home.vault), "version": 2})
    with pytest.raises(VaultError, match="format version 2; this firewall reads version 1"):
        Vault.open(home)


def test_passphrase_mode_never_writes_a_key_file(passphrase_home: Home) -> None:
    vault = Vault.open(passphrase_home)
    vault.add("openai", OPENAI_KEY, "openai")
    assert vault.mode is KeyMode.PASSPHRASE
    assert not passphrase_home.master_key.exists()
    assert read_json(passphrase_home.vault)["key"]["kdf"] == "scrypt"
    assert Vault.open(passphrase_home).get("openai") == OPENAI_KEY


def test_wrong_passphrase_is_reported_once_for_the_vault(
    passphrase_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    Vault.open(passphrase_home).add("openai", OPENAI_KEY, "openai")
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(VaultError, match=f"^wrong passphrase for vault {passphrase_home.vault}$"):
        Vault.open(passphrase_home)


def test_passphrase_vault_without_the_passphrase_says_to_set_it(
    passphrase_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    Vault.open(passphrase_home)
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(VaultError, match=f"protected by a passphrase: set {PASSPHRASE_ENV}"):
        Vault.open(passphrase_home)


def test_empty_passphrase_is_refused(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    with pytest.raises(VaultError, match="set but empty"):
        Vault.open(home)
    assert not home.vault.exists()


def test_adding_an_existing_name_without_force_changes_nothing(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    before = home.vault.read_bytes()
    with pytest.raises(VaultError, match='"openai" already exists .* use --force'):
        vault.add("openai", OTHER_OPENAI_KEY, "openai")
    assert home.vault.read_bytes() == before
    assert vault.get("openai") == OPENAI_KEY


def test_force_rotates_keeping_created(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    first = datetime(2025, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(store, "now", lambda: first)
    vault = Vault.open(home)
    original = vault.add("openai", OPENAI_KEY, "openai")
    monkeypatch.setattr(store, "now", lambda: first + timedelta(days=1))
    rotated = vault.add("openai", OTHER_OPENAI_KEY, "openai", force=True)
    assert (rotated.created, rotated.updated) == (first, first + timedelta(days=1))
    assert rotated.fingerprint != original.fingerprint
    assert Vault.open(home).get("openai") == OTHER_OPENAI_KEY


def test_an_invalid_value_stores_nothing(home: Home) -> None:
    vault = Vault.open(home)
    before = home.vault.read_bytes()
    with pytest.raises(InvalidValue):
        vault.add("openai", "sk-short", "openai")
    assert home.vault.read_bytes() == before


@pytest.mark.parametrize("name", ["", "has space", "-leading-dash", "x" * 65, "a/b"])
def test_malformed_names_are_refused(home: Home, name: str) -> None:
    with pytest.raises(VaultError, match="invalid secret name"):
        Vault.open(home).add(name, "hunter2", "generic")


def test_a_key_given_as_the_name_is_refused_without_echoing_it(home: Home) -> None:
    with pytest.raises(VaultError) as caught:
        Vault.open(home).add(OPENAI_KEY, "hunter2", "generic")
    assert "looks like a credential itself (openai)" in str(caught.value)
    assert OPENAI_KEY not in str(caught.value)


def test_remove_deletes_and_missing_names_raise(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    vault.remove("openai")
    assert vault.names() == []
    with pytest.raises(MissingSecret, match='no secret named "openai"'):
        vault.get("openai")
    with pytest.raises(MissingSecret):
        vault.remove("openai")


def test_a_second_instance_sees_rotation_and_removal_after_reload(home: Home) -> None:
    writer, reader = Vault.open(home), Vault.open(home)
    writer.add("openai", OPENAI_KEY, "openai")
    assert reader.reload_if_changed() is True
    assert reader.get("openai") == OPENAI_KEY
    assert reader.reload_if_changed() is False
    writer.add("openai", OTHER_OPENAI_KEY, "openai", force=True)
    assert reader.reload_if_changed() is True
    assert reader.get("openai") == OTHER_OPENAI_KEY
    writer.remove("openai")
    assert reader.reload_if_changed() is True
    with pytest.raises(MissingSecret):
        reader.get("openai")


def test_a_corrupt_reload_keeps_failing_until_fixed(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    good = home.vault.read_bytes()
    home.vault.write_text("{broken")
    with pytest.raises(VaultError, match="corrupt"):
        vault.reload_if_changed()
    with pytest.raises(VaultError, match="corrupt"):
        vault.reload_if_changed()
    home.vault.write_bytes(good)
    assert vault.reload_if_changed() is True
    assert vault.get("openai") == OPENAI_KEY


def test_writers_in_two_instances_do_not_lose_each_others_entries(home: Home) -> None:
    first, second = Vault.open(home), Vault.open(home)
    first.add("a", "one", "generic")
    second.add("b", "two", "generic")  # second has not reloaded; it must not drop "a"
    assert Vault.open(home).values() == {"a": "one", "b": "two"}


def test_mark_used_is_listed_and_never_rewrites_the_vault(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    vault.add("gh", GITHUB_TOKEN, "github")
    before = home.vault.read_bytes()
    later = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    vault.mark_used(["openai", "not-in-vault"], later)
    vault.mark_used(["openai"], later - timedelta(hours=1))  # older: ignored
    assert home.vault.read_bytes() == before
    assert mode_of(store.usage_path(home)) == 0o600
    last_used = {e.name: e.last_used for e in Vault.open(home).entries()}
    assert last_used == {"gh": None, "openai": later}


def test_removing_an_entry_forgets_its_last_use(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    vault.mark_used(["openai"])
    vault.remove("openai")
    vault.add("openai", OPENAI_KEY, "openai")
    assert vault.entries()[0].last_used is None


def test_entries_never_carry_the_value(home: Home) -> None:
    vault = Vault.open(home)
    vault.add("openai", OPENAI_KEY, "openai")
    (info,) = vault.entries()
    assert OPENAI_KEY not in repr(info)
    assert (info.name, info.provider, len(info.fingerprint)) == ("openai", "openai", 8)
