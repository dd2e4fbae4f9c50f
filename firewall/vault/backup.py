"""The copy of the last good vault, `vault.json.bak` next to the vault, and the way back to it.

Every change the firewall makes to the vault (create, add, remove) writes the new
content to the backup first, then to the vault, each atomically and owner-only: the
backup is always a vault that was written whole by the firewall and read back fine.
When the vault file is damaged (edited by hand, a bad disk, a sync tool), errors name
the backup and the command that puts it back, `firewall secrets restore-backup`.
"""

from __future__ import annotations

from pathlib import Path

RESTORE_COMMAND = "firewall secrets restore-backup"


def backup_path(vault: Path) -> Path:
    return vault.with_name(vault.name + ".bak")


def way_out(vault: Path) -> str:
    """What to do about a vault file that cannot be read, for the end of an error message."""
    backup = backup_path(vault)
    if backup.exists():
        return f"the last good copy is {backup}: put it back with `{RESTORE_COMMAND}`"
    return (
        f"there is no backup ({backup}): move {vault} away and add the secrets again with `firewall secrets add NAME`"
    )
