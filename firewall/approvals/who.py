"""Who let a held request through (or refused it), for the audit table: a person and where they
answered (`alice via cli`, `alice via prompt on pts/3`), or a standing grant (`grant grt_… by
alice`), kept apart so a row a grant passed never reads as one a person approved.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

from firewall.approvals import grants, store
from firewall.approvals.records import APPROVED, DENIED
from firewall.text import printable

GRANT_PREFIX = "grt_"
APPROVAL_PREFIX = "apr_"


def answered_by(db: sqlite_utils.Database, ids: Iterable[object]) -> dict[str, str]:
    """For each approval or grant id the approvals records know, who answered: a person and where,
    or the grant and who made it. Requests nobody answered (expired, cancelled) are left out."""
    wanted = {str(i) for i in ids if i}
    found: dict[str, str] = {}
    for approval_id, row in store.get_many(db, sorted(i for i in wanted if i.startswith(APPROVAL_PREFIX))).items():
        if row.state in (APPROVED, DENIED) and row.decided_by:
            found[approval_id] = person(row.decided_by, row.decided_via)
    for grant_id in sorted(i for i in wanted if i.startswith(GRANT_PREFIX)):
        grant = grants.get_grant(db, grant_id)
        if grant is not None:
            found[grant_id] = f"grant {grant_id} by {printable(grant.created_by)}"
    return found


def person(by: str, via: str | None) -> str:
    return f"{printable(by)} via {printable(via)}" if via else printable(by)
