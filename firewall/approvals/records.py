"""What the approvals keep: held requests, their answers, standing grants, and their errors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields

PENDING, APPROVED, DENIED, EXPIRED, CANCELLED = "pending", "approved", "denied", "expired", "cancelled"


class ApprovalError(Exception):
    """An answer or revocation that cannot be done; the message says why and what to do."""


class UnknownApproval(ApprovalError):
    pass


class AlreadyDecided(ApprovalError):
    pass


@dataclass(frozen=True)
class HeldRequest:
    """What a person needs to judge a held request, and what binds an approval to it.

    `url` has credential-looking query values masked; `fingerprint` is a hash
    over agent, method, full URL, the headers that go upstream and the body, so an
    approval never fits another request (preview.fingerprint).
    """

    request_id: str
    agent: str
    method: str
    url: str
    rule: str  # file:line
    rule_text: str
    reason: str | None
    preview: str
    body_size: int
    fingerprint: str
    policy_sha256: str
    timeout: float


@dataclass(frozen=True)
class Approval:
    """One row of `approvals`."""

    id: str
    request_id: str
    created: float
    expires: float
    timeout: float
    state: str
    agent: str
    method: str
    url: str
    rule: str
    rule_text: str
    reason: str | None
    preview: str
    body_size: int
    fingerprint: str
    policy_sha256: str
    proxy_pid: int
    held: int
    # None until the row is answered (or expires), used or granted:
    decided_at: float | None = None
    decided_by: str | None = None
    detail: str | None = None
    grant_id: str | None = None
    used_at: float | None = None
    used_by_request: str | None = None
    decided_via: str | None = None  # where the answer came from: "cli", "prompt on pts/3"

    def as_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        del data["fingerprint"]
        return data


@dataclass(frozen=True)
class Grant:
    """One row of `approval_grants`: `agent` may send what `rule` approves, until `expires`."""

    id: str
    agent: str
    rule: str
    rule_text: str
    created: float
    expires: float
    created_by: str
    approval_id: str | None
    revoked: float | None
    revoked_by: str | None

    def as_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Answer:
    """What `answer` did: the decided row, and the grant it created, if any."""

    approval: Approval
    grant: Grant | None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


# ---- the proxy's side ----
