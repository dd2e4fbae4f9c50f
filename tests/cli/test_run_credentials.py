"""`firewall run` reads the credentials of the policy in force from its stored JSON, without
building the policy (firewall/policy/compiled_json.py): the same answer as the built policy, and
the same refusal when the stored content is not what its sha256 names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from firewall.policy import compile_source
from firewall.state import policy_store
from firewall.state.db import open_database

POLICY = """\
credential openai {
    secret "openai"
    header Authorization = "Bearer {secret}"
}
credential search {
    secret "search-key"
    query key = "{secret}"
}
credential again {
    secret "openai"
    header X-Api-Key = "{secret}"
}
credential codex {
    secret "codex"
    oauth
    token_url "https://auth.example.com/oauth/token"
}
host api.example.com {
    inject openai
    inject search
    allow GET /v1/**
}
"""


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, policy_store.PolicyVersion]:
    path = tmp_path / "firewall.db"
    db = open_database(path)
    try:
        version = policy_store.store_version(db, compile_source(POLICY).policy, [("p.policy", POLICY)])
    finally:
        db.conn.close()
    return path, version


def _in_force(path: Path) -> policy_store.PolicyVersion:
    conn = sqlite3.connect(path)
    try:
        return policy_store.version_in_force(conn)
    finally:
        conn.close()


def test_the_stored_json_gives_the_built_policys_credentials(stored):
    path, _ = stored
    version = _in_force(path)
    read = version.credentials()
    assert read == version.load().credential_uses()  # the control: built in full
    assert [(c.name, c.secret, c.kind) for c in read] == [
        ("openai", "openai", "header"),
        ("search", "search-key", "query"),
        ("again", "openai", "header"),
        ("codex", "codex", "oauth"),
    ]


def test_a_text_that_is_not_the_one_its_sha256_names_is_built_instead(stored):
    """Same policy, other spelling of its JSON (not as `store_version` wrote it): built in full,
    and it still loads (its canonical JSON has the stored sha256)."""
    path, version = stored
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE policy_versions SET compiled = ? WHERE version = ?", [version.compiled + "\n", 1])
    assert _in_force(path).credentials() == version.credentials()


def test_a_damaged_content_is_refused_as_the_built_policy_refuses_it(stored):
    path, version = stored
    with sqlite3.connect(path) as conn:
        damaged = version.compiled.replace('"search-key"', '"other-key"')
        conn.execute("UPDATE policy_versions SET compiled = ? WHERE version = ?", [damaged, 1])
    with pytest.raises(policy_store.PolicyStoreError, match="does not match its content"):
        _in_force(path).credentials()
