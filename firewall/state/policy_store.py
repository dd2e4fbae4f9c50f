"""Applied policy versions: history in SQLite, one of them active.

`apply` stores a compiled policy as a new version and makes it active in one
transaction; a running proxy polls the active version and swaps it in.
History is append-only: a rollback re-activates an old version by storing it
again as a new version, so every change has its own row (who, when, what).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firewall.policy.compiled_json import CredentialUse, credential_uses

if TYPE_CHECKING:  # sqlite_utils only for its types: `firewall run` never loads it (state/db.py)
    import sqlite_utils

    from firewall.policy import CompiledPolicy


class PolicyStoreError(Exception):
    pass


class AlreadyInForce(PolicyStoreError):
    """A rollback to the content that is in force: nothing to do, and nothing is stored."""


WAY_OUT = (
    "put a good version in force with `firewall policy rollback VERSION` (see `firewall policy history`) "
    "or `firewall policy apply PATH`"
)


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    sha256: str
    applied_at: float
    applied_by: str
    note: str
    sources: tuple[tuple[str, str], ...]  # (path, text)
    compiled: str
    tests: str = ""  # the tests' outcome when it was applied; "" for versions stored before it was kept
    # Where each source was read from, as an absolute path ("" when not known: versions stored
    # before it was kept): what an approval's rule edits (approvals/rule_change.py).
    origins: tuple[str, ...] = ()

    def load(self) -> CompiledPolicy:
        from firewall.policy import CompiledPolicy

        try:
            policy = CompiledPolicy.from_json(self.compiled)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not a compiled policy any more
            raise PolicyStoreError(
                f"policy version {self.version}: its stored content cannot be read ({type(exc).__name__}: {exc}); "
                f"the database was modified; {WAY_OUT}"
            ) from None
        if policy.sha256 != self.sha256:
            raise PolicyStoreError(
                f"policy version {self.version}: stored sha256 {self.sha256[:12]} does not match its content "
                f"{policy.sha256[:12]}; the database was modified; {WAY_OUT}"
            )
        return policy

    def credentials(self) -> tuple[CredentialUse, ...]:
        """The policy's credentials (name, vault entry, kind), read from the stored JSON without
        building the policy when that text is the very one its sha256 names (as `store_version`
        stored it); otherwise from `load()`, which refuses a content that does not load."""
        if hashlib.sha256(self.compiled.encode()).hexdigest() == self.sha256:
            try:
                return credential_uses(self.compiled)
            except (ValueError, KeyError, TypeError):
                pass
        return self.load().credential_uses()

    def summary(self) -> dict:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "applied_at": self.applied_at,
            "applied_by": self.applied_by,
            "note": self.note,
            "files": [path for path, _ in self.sources],
            "tests": self.tests,
        }


def _version(row: dict) -> PolicyVersion:
    return PolicyVersion(
        version=row["version"],
        sha256=row["sha256"],
        applied_at=row["applied_at"],
        applied_by=row["applied_by"],
        note=row["note"],
        sources=tuple((s["path"], s["text"]) for s in json.loads(row["sources"])),
        compiled=row["compiled"],
        tests=row.get("tests") or "",
        origins=tuple(s.get("file", "") for s in json.loads(row["sources"])),
    )


def store_version(
    db: sqlite_utils.Database,
    policy: CompiledPolicy,
    sources: list[tuple[str, str]],
    note: str = "",
    now: float | None = None,
    tests: str = "",
    origins: list[str] | None = None,
) -> PolicyVersion:
    """Store `policy` as the next version and make it active, atomically. `origins`: the absolute
    path each source was read from, parallel to `sources`."""
    files = [{"path": p, "text": t} for p, t in sources]
    for entry, origin in zip(files, origins or (), strict=False):
        if origin:
            entry["file"] = origin
    with db.conn:  # one transaction: the new row and the active pointer change together
        db.execute("BEGIN IMMEDIATE")
        latest = db.execute("SELECT max(version) FROM policy_versions").fetchone()[0] or 0
        row = {
            "version": latest + 1,
            "sha256": policy.sha256,
            "applied_at": now if now is not None else time.time(),
            "applied_by": _os_user(),
            "note": note,
            "sources": json.dumps(files),
            "compiled": policy.to_json(),
            "tests": tests,
        }
        db["policy_versions"].insert(row)
        db["policy_active"].upsert({"id": 1, "version": row["version"]}, pk="id")
    return _version(row)


def active_version(db: sqlite_utils.Database | sqlite3.Connection) -> PolicyVersion | None:
    """The version in force; `db` may be a plain sqlite3 connection (`firewall run`: state/db.py)."""
    return _one_version(
        db, "SELECT v.* FROM policy_active a JOIN policy_versions v ON v.version = a.version WHERE a.id = 1"
    )


def _one_version(db: sqlite_utils.Database | sqlite3.Connection, sql: str, params: list | None = None):
    conn = db if isinstance(db, sqlite3.Connection) else db.conn
    cursor = conn.execute(sql, params or [])
    row = cursor.fetchone()
    return _version(dict(zip([c[0] for c in cursor.description], row, strict=True))) if row else None


NONE_APPLIED = "no policy has been applied yet; apply one with `firewall policy apply PATH`, or pass --policy PATH"


def policy_in_force(db: sqlite_utils.Database | sqlite3.Connection) -> CompiledPolicy:
    """The compiled policy in force. PolicyStoreError, with the way out, when none was applied or
    its stored content does not load."""
    return version_in_force(db).load()


def version_in_force(db: sqlite_utils.Database | sqlite3.Connection) -> PolicyVersion:
    """The version in force (`firewall run` reads its credentials, and builds it only when it must);
    PolicyStoreError, with the way out, when none was applied."""
    version = active_version(db)
    if version is None:
        raise PolicyStoreError(NONE_APPLIED)
    return version


def active_marker(db: sqlite_utils.Database | sqlite3.Connection) -> tuple[int, str] | None:
    """(version, sha256) of the active policy: cheap, for pollers."""
    row = db.execute(
        "SELECT v.version, v.sha256 FROM policy_active a JOIN policy_versions v ON v.version = a.version"
    ).fetchone()
    return (row[0], row[1]) if row else None


def get_version(db: sqlite_utils.Database | sqlite3.Connection, version: int) -> PolicyVersion | None:
    """`db` may be a plain sqlite3 connection (the proxy's watcher: state/db.py's open_plain)."""
    return _one_version(db, "SELECT * FROM policy_versions WHERE version = ?", [version])


def history(db: sqlite_utils.Database) -> list[PolicyVersion]:
    return [_version(row) for row in db.query("SELECT * FROM policy_versions ORDER BY version")]


def rollback(db: sqlite_utils.Database, version: int | None = None) -> PolicyVersion:
    """Re-activate `version` (default: the one before the active version) as a new version."""
    active = active_version(db)
    if active is None:
        raise PolicyStoreError("no policy has been applied yet; nothing to roll back")
    if version is None:
        previous = [v for v in history(db) if v.version < active.version and v.sha256 != active.sha256]
        if not previous:
            raise PolicyStoreError(f"version {active.version} is the first policy applied; nothing to roll back to")
        target = previous[-1]
    else:
        target = get_version(db, version)
        if target is None:
            raise PolicyStoreError(f"no policy version {version}; see `firewall policy history`")
    policy = target.load()
    if target.sha256 == active.sha256 and _loads(active):
        raise AlreadyInForce(
            f"version {target.version} is already in force (as version {active.version}, sha256 "
            f"{active.sha256[:16]}); nothing changed"
        )
    return store_version(
        db,
        policy,
        list(target.sources),
        note=f"rollback to version {target.version}",
        tests=target.tests,
        origins=list(target.origins),
    )


def _loads(version: PolicyVersion) -> bool:
    """Whether a version's content is readable: a damaged active version is not really in force."""
    try:
        version.load()
    except PolicyStoreError:
        return False
    return True


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
