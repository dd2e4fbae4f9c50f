"""Every table of the state folder's database, one migration set per owner, applied in this order
by `firewall.state.db.open_database`. A new table or column: a migration in its owner's module.

Imported only to bring the schema up to date: the audit writer's child process, which only
connects, loads none of it (nor sqlite_utils).
"""

from __future__ import annotations

from firewall.state.schema import agents, approvals, audit, policy

MIGRATION_SETS = (audit.MIGRATIONS, policy.MIGRATIONS, agents.MIGRATIONS, approvals.MIGRATIONS)
