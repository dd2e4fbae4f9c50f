"""`firewall init`: create the state folder and the vault with its key. Safe to run again."""

from __future__ import annotations

import os

import typer

from firewall.cli.errors import warn
from firewall.cli.secrets_cmd import vault_errors
from firewall.state.home import Home, default_root, open_home
from firewall.vault import PASSPHRASE_ENV, KeyMode, Vault


def init() -> None:
    """Create the state folder (owner-only) and the vault's key; say where they are. Safe to run again.

    With FIREWALL_PASSPHRASE set, the key is derived from it and never stored; otherwise a key file is made.

    Example: firewall init
    """
    with vault_errors():
        root = default_root()
        existed = Home(root).vault.exists()
        home = open_home(root)
        vault = Vault.open(home)
    typer.echo(f"state folder: {home.root}")
    typer.echo(f"vault:        {vault.path}{' (already set up)' if existed else ' (created)'}")
    if vault.mode is KeyMode.PASSPHRASE:
        typer.echo(f"key:          derived from {PASSPHRASE_ENV}; never stored on disk")
        return
    typer.echo(f"key:          {home.master_key} (key file)")
    typer.echo(
        "note: a program running as this OS user can read the key file; when agents are not "
        f"isolated, use passphrase mode ({PASSPHRASE_ENV}), see docs/vault.md"
    )
    if os.environ.get(PASSPHRASE_ENV):
        warn(f"{PASSPHRASE_ENV} is set, but this vault uses its key file; the passphrase is ignored")
