"""The audit log: one hash-chained SQLite row per request the proxy handled."""

from firewall.audit.batching import AuditWriteError
from firewall.audit.chain import ChainReport, verify
from firewall.audit.process_writer import ProcessAuditWriter
from firewall.audit.prune import PruneError, PruneResult, prune
from firewall.audit.query import AuditFilter, Group, newest, stats
from firewall.audit.record import AuditRecord, AuditRecordError
from firewall.audit.writer import AuditWriter

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
