"""Signed checkpoints of the audit chain, kept outside the database.

The hash chain shows a row changed in place, but someone who can write the
database can also delete its last rows, recompute the whole chain, or delete
old rows under a forged prune anchor, and the chain alone still verifies. A
checkpoint is a signed statement of the chain's head (its last row's seq and
hash, at a time) or of a prune (the anchor it wrote), appended as one JSON line
to a file the user can copy elsewhere (Certificate Transparency's signed tree
heads, pipelock's receipts). Against such a file, `check` finds:

- truncation: a checkpointed row that is neither in the table nor pruned;
- a rewrite: a checkpointed row whose hash is not the one signed;
- a forged prune: an anchor no signed prune record vouches for.

The signing key (Ed25519) lives in the state folder, owner-only. Checkpoints
stop whoever cannot read it (an isolated agent, a database copied elsewhere);
a copy of the file kept elsewhere also stops later rewrites by anyone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firewall.audit.chain import Link, head
from firewall.state.home import SECRET_FILE_MODE, check_private_file, write_private_file
from firewall.text import iso_utc

HEAD = "head"
PRUNE = "prune"


class CheckpointError(Exception):
    """A checkpoint file or key that cannot be read or used; the message says where."""


@dataclass(frozen=True)
class Checkpoint:
    kind: str  # HEAD: the chain's last row; PRUNE: the anchor a prune wrote
    seq: int
    hash: str
    time: float
    key_id: str  # the signing key: the first 16 hex digits of sha256 of its public bytes
    signature: str = ""  # hex Ed25519 over `signed_bytes()`

    def signed_bytes(self) -> bytes:
        return json.dumps([self.kind, self.seq, self.hash, self.time, self.key_id], separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The state folder's signing key, made on first use (0600)."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private_file(path, pem)
        return key
    check_private_file(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: not an Ed25519 private key ({exc}); move it aside to make a new one "
            "(checkpoints signed with it then verify only with --public-key)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path}: not an Ed25519 private key")
    return key


def public_key_from(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file (`firewall audit checkpoint --public-key` writes one)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read a public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path}: not an Ed25519 public key")
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: Ed25519PrivateKey, kind: str, link: Link, now: float) -> Checkpoint:
    unsigned = Checkpoint(kind, link.seq, link.hash, now, key_id(key.public_key()))
    return Checkpoint(**{**asdict(unsigned), "signature": key.sign(unsigned.signed_bytes()).hex()})


def append(path: Path, checkpoint: Checkpoint) -> None:
    """Add one line to the checkpoint file (owner-only), on disk before this returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, SECRET_FILE_MODE)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_head(conn: sqlite3.Connection, key: Ed25519PrivateKey, path: Path, now: float) -> Checkpoint:
    """Sign the chain's head as it is now and append it to `path`."""
    checkpoint = sign(key, HEAD, head(conn), now)
    append(path, checkpoint)
    return checkpoint


def read(path: Path) -> list[Checkpoint]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointError(f"{path}: {exc.strerror}") from exc
    checkpoints = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            checkpoint = Checkpoint(**fields)
            if checkpoint.kind not in (HEAD, PRUNE) or not isinstance(checkpoint.seq, int):
                raise TypeError("unknown kind or seq")
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}:{number}: not a checkpoint line ({exc})") from exc
        checkpoints.append(checkpoint)
    return checkpoints


@dataclass(frozen=True)
class CheckpointReport:
    checked: int  # checkpoints whose signature holds and that the database agrees with
    problems: tuple[str, ...]  # each names the row and the checkpoint it contradicts

    @property
    def intact(self) -> bool:
        return not self.problems


def check(
    conn: sqlite3.Connection, checkpoints: list[Checkpoint], public: Ed25519PublicKey, source: Path
) -> CheckpointReport:
    """Compare the database with signed checkpoints (see the module docstring)."""
    problems: list[str] = []
    expected_id = key_id(public)
    anchors = dict(conn.execute("SELECT seq, hash FROM audit_anchor").fetchall())
    last_row = conn.execute("SELECT max(seq) FROM audit").fetchone()[0] or 0
    reach = max([last_row, *anchors])  # the highest seq the table accounts for
    signed_prunes: dict[int, str] = {}
    good: list[Checkpoint] = []
    for number, checkpoint in enumerate(checkpoints, 1):
        where = f"{source} checkpoint {number} (row {checkpoint.seq})"
        if checkpoint.key_id != expected_id:
            problems.append(f"{where}: signed by key {checkpoint.key_id}, not {expected_id}")
            continue
        try:
            public.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
        except (InvalidSignature, ValueError):
            problems.append(f"{where}: the signature does not hold: the checkpoint was edited")
            continue
        good.append(checkpoint)
        if checkpoint.kind == PRUNE:
            signed_prunes[checkpoint.seq] = checkpoint.hash
    for checkpoint in good:
        if checkpoint.kind != HEAD or checkpoint.seq == 0:
            continue
        where = f"row {checkpoint.seq} (checkpointed at {iso_utc(checkpoint.time)})"
        row = conn.execute("SELECT hash FROM audit WHERE seq = ?", [checkpoint.seq]).fetchone()
        if row is not None:
            if row[0] != checkpoint.hash:
                problems.append(f"{where}: its hash is not the one signed: the log was rewritten")
        elif checkpoint.seq > reach:
            problems.append(f"{where}: missing, and no row after {reach} exists: the log was truncated")
        elif checkpoint.seq in anchors and anchors[checkpoint.seq] != checkpoint.hash:
            problems.append(f"{where}: the prune anchor's hash is not the one signed: the log was rewritten")
    newest = max((c.seq for c in good), default=0)
    for seq, anchor_hash in sorted(anchors.items()):
        if seq <= newest and signed_prunes.get(seq) != anchor_hash:
            problems.append(f"the prune anchor at row {seq} has no signed prune record: a forged prune")
    return CheckpointReport(checked=len(good), problems=tuple(problems))


def checkpoint_database(database: Path, key_path: Path, path: Path, now: float) -> Checkpoint:
    """Sign the head of the audit chain in `database` (the proxy does this as it stops)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return checkpoint_head(conn, load_or_create_key(key_path), path, now)
    finally:
        conn.close()
