"""The audit log: one hash-chained SQLite row per request the proxy handled.

The names below load on first use (PEP 562): a module that needs one part (the audit
writer's child process, `firewall run` reading a record's fields) does not load the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from firewall.lazy import lazy_names

if TYPE_CHECKING:
    from firewall.audit.batching import AuditWriteError
    from firewall.audit.chain import ChainReport, verify
    from firewall.audit.process_writer import ProcessAuditWriter
    from firewall.audit.prune import PruneError, PruneResult, prune
    from firewall.audit.query import AuditFilter, Group, newest, stats
    from firewall.audit.record import AuditRecord, AuditRecordError
    from firewall.audit.writer import AuditWriter

_WHERE = {
    "AuditFilter": "query",
    "AuditRecord": "record",
    "AuditRecordError": "record",
    "AuditWriteError": "batching",
    "AuditWriter": "writer",
    "ChainReport": "chain",
    "Group": "query",
    "ProcessAuditWriter": "process_writer",
    "PruneError": "prune",
    "PruneResult": "prune",
    "newest": "query",
    "prune": "prune",
    "stats": "query",
    "verify": "chain",
}

__all__ = [
    "AuditFilter",
    "AuditRecord",
    "AuditRecordError",
    "AuditWriteError",
    "AuditWriter",
    "ChainReport",
    "Group",
    "ProcessAuditWriter",
    "PruneError",
    "PruneResult",
    "newest",
    "prune",
    "stats",
    "verify",
]


__getattr__ = lazy_names(__name__, _WHERE)
